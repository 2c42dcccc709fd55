"""Command-line tools that are not shipped remote code (``save_pretrained`` copies only the model folders):
``convert_facexformer`` (``mmaffect convert facexformer``)."""
