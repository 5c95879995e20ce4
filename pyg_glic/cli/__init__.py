r"""The ``pyg-glic`` command line (:mod:`pyg_glic.cli.main`)."""

#: Subcommand -> (module of pyg_glic.cli that defines it, one-line help).
COMMANDS = {
    "compress": ("coding", "compress an image to a .glic file"),
    "decompress": ("coding", "decompress a .glic file to an image"),
    "demo": ("demo", "compress and decompress the bundled image, print quality"),
    "info": ("info", "print versions, the available backends and the shipped weights"),
    "train": ("train", "train a codec on image folders (rate-distortion loss)"),
    "eval": ("eval", "code a folder of images with GLIC, peers and classical codecs; BD-rates"),
    "compressai-eval": ("compressai_eval", "run CompressAI's evaluator (compressai.utils.eval_model) "
                                           "with the GLIC models registered"),
}
