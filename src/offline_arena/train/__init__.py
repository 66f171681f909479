"""Trainers, one small module each: sft, dpo, kto, reward, grpo on TRL; ppo of our own (TRL dropped it).
TRL, PEFT and transformers are imported only inside this package, and only when a stage runs."""
