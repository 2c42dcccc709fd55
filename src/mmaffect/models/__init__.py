"""Model folders. Each ``<name>/`` is flat remote code (torch + transformers + single-dot imports) whose
names load on first use; :mod:`mmaffect._registration` registers them with the transformers Auto API
when transformers' Auto modules load. :mod:`.text_only` is the text-only baseline (not remote code:
it saves as the encoder's own ``...ForSequenceClassification``)."""
