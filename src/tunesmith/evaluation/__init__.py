"""Measuring a model without training it: evaluation loss and metrics (`do_eval`), generated predictions with
BLEU / ROUGE (`do_predict`), and multiple-choice exams (`tunesmith eval`). Sits above train/ and infer/."""
