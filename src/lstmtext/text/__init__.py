"""Text to integers: the word tokenizer, the ranked vocabulary and the `Tokenizer` that maps raw strings to ids."""

from lstmtext.text.tokenizer import TOKENIZER_VERSION, Tokenizer, tokenize
from lstmtext.text.vocab import Vocab

__all__ = ["TOKENIZER_VERSION", "Tokenizer", "Vocab", "tokenize"]
