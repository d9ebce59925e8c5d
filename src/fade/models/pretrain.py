"""``python -m fade.models.pretrain [--name N] [--force] [--cache-dir D]``: build (or load) a cached
pretrained encoder of :mod:`fade.models.pretrained_encoder` and print its record."""

from __future__ import annotations

import argparse
import json

from .pretrained_encoder import CACHE_ENV, RECIPES, artifact_paths, load_pretrained_encoder

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    """Build encoder ``--name`` (rebuild with ``--force``) and print its record as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="shapes", choices=sorted(RECIPES))
    parser.add_argument("--force", action="store_true", help="rebuild even when cached")
    parser.add_argument("--cache-dir", help=f"default ${CACHE_ENV} or ~/.cache/fade")
    args = parser.parse_args(argv)
    if args.force:
        for path in artifact_paths(args.name, args.cache_dir):
            path.unlink(missing_ok=True)
    _, record = load_pretrained_encoder(args.name, args.cache_dir, log=print)
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
