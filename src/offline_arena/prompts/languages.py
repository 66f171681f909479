"""The languages a `language:response_language` constraint may ask for, read by the constraint
(constraints.py) and by its other wordings (phrasings.py)."""

# IFEval's languages (instructions_util.LANGUAGE_CODES: ISO 639-1 code -> name, the codes langdetect
# returns), English left out: every base task is written in English and the case instructions already say
# "in English", so "answer in English" would be a constraint every answer meets without trying.
LANGUAGES = {"es": "Spanish", "pt": "Portuguese", "ar": "Arabic", "hi": "Hindi", "fr": "French", "ru": "Russian",
             "de": "German", "ja": "Japanese", "it": "Italian", "bn": "Bengali", "uk": "Ukrainian", "th": "Thai",
             "ur": "Urdu", "ta": "Tamil", "te": "Telugu", "bg": "Bulgarian", "ko": "Korean", "pl": "Polish",
             "he": "Hebrew", "fa": "Persian", "vi": "Vietnamese", "ne": "Nepali", "sw": "Swahili", "kn": "Kannada",
             "mr": "Marathi", "gu": "Gujarati", "pa": "Punjabi", "ml": "Malayalam", "fi": "Finnish"}
# Languages written without spaces between words: IFEval's word count (\w+ runs) sees a sentence as one word.
UNSPACED_LANGUAGES = frozenset({"ja", "th"})
