"""What surrounds the tokenizers: their files, their command line, and the check that the package is ours.

- `model_file.py`: the `.model` format that `save` writes and `load` reads (an exact round trip), and the `.vocab`
  listing for people;
- `bpe_files.py`: merges files (GPT-2's `vocab.bpe`, Hugging Face's `merges.txt`) and Hugging Face's `vocab.json`
  (`RegexTokenizer.from_hf`, `to_hf`);
- `cli.py`: `python -m tokenizers train/encode/decode`;
- `identity.py`: whether `import tokenizers` gave this project's package or Hugging Face's, of the same name.
"""
