"""Prompt curation as Arena Learning does it before any battle: duplicates removed (exact, and near by
MinHash-LSH), training prompts decontaminated against every evaluation set (token n-gram overlap: Tulu 3's
8-gram rule and lm-evaluation-harness's 13-grams), and subsets chosen for diversity or difficulty."""
