"""Sub-commands of ``python -m rfcn_face``. Each module defines ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``; :data:`COMMANDS` maps a verb to its module (imported only when that verb runs)."""
COMMANDS = {
    "demo": "rfcn_face.cli.demo",
    "emo": "rfcn_face.cli.emo",
    "dataset-info": "rfcn_face.cli.dataset_info",
    "evaluate": "rfcn_face.cli.evaluate",
    "info": "rfcn_face.cli.info",
    "search": "rfcn_face.cli.search",
    "train": "rfcn_face.cli.train",
    "launch": "rfcn_face.cli.launch",
    "test": "rfcn_face.cli.test",
    "detect": "rfcn_face.cli.detect",
    "export": "rfcn_face.cli.export",
    "reproduce": "rfcn_face.cli.reproduce",
}


def write_json(path, obj, indent: int = 1) -> None:
    """Write a command's ``--json`` output (atomically, creating folders; NaN/inf become null) and say where."""
    from ..checkpoint import atomic_write_json
    print(f"wrote {atomic_write_json(path, obj, indent)}")
