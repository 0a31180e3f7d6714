"""The small mixed text the tokenizer tests train on (the `trained` fixtures in conftest.py) and encode."""

SAMPLE = """First Citizen:
Before we proceed any further, hear me speak.

def f(x):\r\n    return x ** 2  # 12345678 DON'T  you're   HE'LL
    Привет, мир! 你好，世界 こんにちは 🙂🙂🙂 naïve café — “quotes” \t\t tabs
aaaa bbbb aaaaaa abababab 1000000 3.14159
"""
