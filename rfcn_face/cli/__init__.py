"""Sub-commands of ``python -m rfcn_face``. Each module defines ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``; :data:`COMMANDS` maps a verb to its module (imported only when that verb runs)."""
COMMANDS = {
    "demo": "rfcn_face.cli.demo",
    "emo": "rfcn_face.cli.emo",
    "dataset-info": "rfcn_face.cli.dataset_info",
    "evaluate": "rfcn_face.cli.evaluate",
    "info": "rfcn_face.cli.info",
    "search": "rfcn_face.cli.search",
}
