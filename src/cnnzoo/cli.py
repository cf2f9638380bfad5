"""`cnnzoo` command line: inspect the zoo and the pipeline's config."""

from __future__ import annotations

import argparse
import sys

from cnnzoo import logs


def _models(args: argparse.Namespace) -> int:
    import numpy as np

    from cnnzoo.models import create_model, get_entry, list_models

    size = args.input_size
    rows = []
    for name in list_models():
        try:
            model = create_model(name, input_shape=(size, size, args.channels),
                                 num_classes=args.num_classes)
            params = f"{sum(int(np.prod(w.shape)) for w in model.trainable_weights):,}"
        except ValueError as err:
            params = f"n/a ({err})"
        rows.append((name, get_entry(name).family, params))
    width = max(len(r[0]) for r in rows)
    print(f"{'model':<{width}}  {'family':<10}  trainable params at {size}x{size}x{args.channels}, "
          f"{args.num_classes} classes")
    for name, family, params in rows:
        print(f"{name:<{width}}  {family:<10}  {params}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from cnnzoo import config

    try:
        params = config.load(args.params)
    except config.ConfigError as err:
        print(err, file=sys.stderr)
        return 1
    print(f"{args.params} is valid: archs {', '.join(params.base.archs)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    logs.setup("WARNING")
    parser = argparse.ArgumentParser(prog="cnnzoo", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("models", help="list registered models with parameter counts")
    m.add_argument("--input-size", type=int, default=224)
    m.add_argument("--channels", type=int, default=3)
    m.add_argument("--num-classes", type=int, default=1000)
    m.set_defaults(func=_models)
    c = sub.add_parser("check", help="validate a params file")
    c.add_argument("params", nargs="?", default="params.yaml")
    c.set_defaults(func=_check)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
