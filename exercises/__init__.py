"""Graded exercises: write the pieces of a language model yourself, have them checked, then train on them.

Each exercise is one file in this folder, numbered in the order data flows through a model (tokens, embeddings,
attention, MLP, loss, backward, optimizer step, sampling). Open it, read its docstring (the task, the formula, the
shapes, what the grader checks) and replace each `raise NotImplementedError` with your code.

    python -m exercises list                  every exercise with its topic and status
    python -m exercises check layer_norm      grade one (--all: every one); the first problem, in words
    python -m exercises hint layer_norm       the next hint
    python -m exercises reset layer_norm      back to the blank (your version is kept in exercises/.backups/)
    python train.py --exercises all           train the default model with your code in place of the library's

Layout: the blanks you edit here, their pristine copies in blanks/ (what `reset` restores), one grader per
exercise in checks/, the command line and the grading helpers in grading/, and the reference solutions in
solutions/ (absent from a student handout: `python -m exercises handout DIR`).
"""
