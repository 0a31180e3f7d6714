"""Training, as train.py runs it. Read in this order:

    options.py      every option with its default, the presets' values, the strict parser (OptionError)
    data.py         generated tasks (addition, reverse) and text files as token streams
    presets.py      one Task per preset: data, model, loss, held-out metric
    loop.py         the loop: AdamW, schedule, accumulation, clipping, evaluation, checkpoints, Ctrl-C
    evaluate.py     the loss on random batches while training, and over the whole val split afterwards
    checkpoint.py   what a run leaves in out_dir: the best model, the tokenizer, the state for --resume
    lock.py         one run owns its out_dir
    metrics.py      metrics.jsonl, loss.png, FLOPs and the measured matmul peak
    sample.py       `python train.py sample`: text from a saved model

Importing it changes nothing outside it; train.py turns the speed backend on (tinygrad_lite.fast.enable()).
"""
