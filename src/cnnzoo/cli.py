"""`cnnzoo` command line: run the pipeline, inspect the zoo and the pipeline's config."""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path

from cnnzoo import logs
from cnnzoo.config import MAX_PIXELS


def _models(args: argparse.Namespace) -> int:
    from cnnzoo.models import create_model, list_models
    from cnnzoo.models.cost import format_table, model_cost, zoo_table

    shape = (args.input_size, args.input_size, args.channels)
    unknown = [n for n in [*args.names, *([args.layers] if args.layers else [])]
               if n not in list_models(None)]
    if unknown:
        print(f"cnnzoo models: unknown model(s) {', '.join(unknown)}; known: "
              f"{', '.join(list_models(None))}", file=sys.stderr)
        return 2
    if args.layers:
        model = create_model(args.layers, input_shape=shape, num_classes=args.num_classes)
        print(format_table(model_cost(model)))
        return 0
    print(zoo_table(args.names or list_models(None), shape, args.num_classes))
    return 0


def _load_params(path: str):
    """The validated params, or None after printing the one-line reason (`check` and `run`;
    no TensorFlow import: names are checked against cnnzoo/config/catalogue.json)."""
    from cnnzoo import config

    try:
        return config.load(path)
    except config.ConfigError as err:
        print(err, file=sys.stderr)
        return None


def _check(args: argparse.Namespace) -> int:
    params = _load_params(args.params)
    if params is None:
        return 2
    print(f"{args.params} is valid: archs {', '.join(params.base.archs)}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from cnnzoo import config
    from cnnzoo.tools.bench import bench_data

    if args.what == "train":
        from cnnzoo.tools import perf

        result = perf.run(args.params, args.prepared, args.augmented, Path(args.out),
                          archs=args.archs, quick=args.quick)
        print(perf.table(result))
        print(f"\n(written to {Path(args.out) / 'results.json'} and results.md)")
        return 0

    r = bench_data(config.load(args.params), args.prepared, args.augmented, args.batches)
    print(f"input pipeline : {r['pipeline_images_per_s']:>10,.0f} images/s "
          f"(augmented shards + mixing, batch {r['batch_size']})")
    print(f"training step  : {r['train_step_images_per_s']:>10,.0f} images/s ({r['model']}, "
          "the zoo's fastest model)")
    ok = r["ratio"] >= r["target_ratio"]
    print(f"ratio          : {r['ratio']:>10.1f}x  (target >= {r['target_ratio']:.0f}x: "
          f"{'met' if ok else 'NOT met'})")
    return 0 if ok else 1


def _sweep(args: argparse.Namespace) -> int:
    from cnnzoo import config
    from cnnzoo.tools.sweep import run_sweep

    logs.setup()
    try:
        run_sweep(args.labels, params_path=args.params, restore=not args.no_restore)
    except (config.ConfigError, RuntimeError) as err:
        print(f"sweep failed: {err}", file=sys.stderr)
        return 1
    return 0


def _seeds(args: argparse.Namespace) -> int:
    """Reruns task B's stages and the other pipelines' training at N seeds as DVC experiments
    (the data, scenes and task-A networks stay the params file's unless --pretrain), then
    writes reports/seeds.csv: mean, standard deviation and range per family and pipeline."""
    from cnnzoo import config
    from cnnzoo.tools.seeds import run_seeds

    logs.setup()
    try:
        run_seeds(args.n, params_path=args.params, pretrain=args.pretrain)
    except (config.ConfigError, RuntimeError, ValueError) as err:
        print(f"seeds failed: {err}", file=sys.stderr)
        return 1
    return 0


def _predict(args: argparse.Namespace) -> int:
    """Pre-processes PNG/JPEG files (any size, colour or grey) as in training (model.json) and
    prints the top-k labels with probabilities."""
    from cnnzoo.deploy.predict import PredictError, predict

    try:
        results = predict(args.model, args.images, card=args.card, top_k=args.top_k,
                          max_pixels=args.max_pixels, invert=args.invert)
    except PredictError as err:
        print(f"cnnzoo predict: {err}", file=sys.stderr)
        return 2
    for r in results:
        if r.warning:
            print(f"cnnzoo predict: warning: {r.warning}", file=sys.stderr)
        print(f"{r.image}: " + ", ".join(f"{label} {p:.3f}" for label, p in r.top))
    return 0


def _sizes(args: argparse.Namespace) -> int:
    """Without names: the `sizes` DVC stage for params.yaml's `sizes` section (cached after
    the first run, which takes minutes), then the table. With names: those models measured
    now."""
    from cnnzoo import config
    from cnnzoo.deploy.sizes import measure_all
    from cnnzoo.files import read_csv
    from cnnzoo.reporting.sizes_table import to_text

    logs.setup()
    if args.names:
        try:
            cfg = config.SizesConfig(models=args.names, input_size=args.input_size,
                                     channels=args.channels, num_classes=args.num_classes)
        except ValueError as err:
            print(err, file=sys.stderr)
            return 2
        print(to_text(measure_all(cfg)))
        return 0
    if failed := _stage_then_report("sizes"):
        return failed
    print(to_text(read_csv(Path("reports/sizes.csv"))))
    return 0


def _stage_then_report(stage: str) -> int:
    """A stage off `make run`'s path (`sizes`, `robustness`), then the report again so that its
    section appears (seconds; the report does not depend on the stage, see dvc.yaml): 0, or the
    failure's exit code after printing what failed."""
    from cnnzoo.tools.runner import DEFAULT_TARGETS, run_pipeline

    outcome = run_pipeline([stage], summary=False)
    if outcome.returncode == 0 and Path("reports/leaderboard.md").is_file():
        outcome = run_pipeline([*DEFAULT_TARGETS, "--force", "--single-item"], summary=False)
    if outcome.returncode != 0:
        print(outcome.summary, file=sys.stderr)
    return outcome.returncode


def _robustness(args: argparse.Namespace) -> int:
    """After `make run`: the `robustness` DVC stage (every family's Keras model and int8 file on
    11 corruptions x 3 severities of the test images; cached, minutes the first time), then
    the report again with mean corruption accuracy in the leaderboard."""
    logs.setup()
    if failed := _stage_then_report("robustness"):
        return failed
    print(Path("reports/robustness.md").read_text())
    return 0


def _promote(args: argparse.Namespace) -> int:
    """The only way besides the committed default run's report to move @mobile: e.g. after
    `dvc exp apply <experiment>`. The version is tagged with its architecture, data, metrics,
    git commit and experiment."""
    from cnnzoo import config
    from cnnzoo.tracking import promote

    logs.setup()
    try:
        with logs.native_output("TensorFlow import"):  # params validation imports Keras
            version = promote.promote(args.arch, params_file=args.params)
    except (FileNotFoundError, RuntimeError, config.ConfigError) as err:
        print(f"cnnzoo promote: {err}", file=sys.stderr)
        return 2
    print(f"{args.arch} ships: models:/{promote.MOBILE_MODEL}@{promote.ALIAS} is version {version}")
    return 0


def _sample_folder(args: argparse.Namespace) -> int:
    from cnnzoo.data.samples import write_digits

    n = write_digits(args.out)
    print(f"{args.out}: {n} handwritten digits as 24x24 grey PNGs, one sub-folder per digit "
          f"(data.source=folder, data.path={args.out})")
    return 0


def _tconv(args: argparse.Namespace) -> int:
    from cnnzoo.models import unet

    def rows(m) -> str:
        return "\n".join("  " + " ".join(f"{v:>3}" for v in row) for row in m)

    out = unet.transposed_conv_example(args.stride)
    print(f"input:\n{rows(unet.LECTURE_INPUT)}\nfilter:\n{rows(unet.LECTURE_FILTER)}\n"
          f"Conv2DTranspose, stride {args.stride}, valid padding -> {out.shape[0]}x{out.shape[1]}:\n"
          f"{rows(out)}")
    if args.stride == 1:
        print("The lecture's slide shows rows 3-4 as [15 23 24 35] and [4 12 11 5]; a transposed "
              "convolution gives the rows above (no stride or cropping gives the slide's).")
    return 0


def _stylize(args: argparse.Namespace) -> int:
    """Optimises an image whose VGG features match CONTENT's at block4_conv2 and whose Gram
    matrices match STYLE's at block1-5_conv1."""
    from cnnzoo.tasks import stylize

    try:
        extractor = stylize.pick_extractor(args.weights)
        content = stylize.load_image(args.content, args.size)
        style = stylize.load_image(args.style, args.size)
    except (OSError, RuntimeError, ValueError) as err:
        print(f"cnnzoo stylize: {err}", file=sys.stderr)
        return 1
    image, history = stylize.stylize(extractor, content, style, steps=args.steps,
                                     learning_rate=args.learning_rate,
                                     content_weight=args.content_weight,
                                     style_weight=args.style_weight, tv_weight=args.tv_weight,
                                     seed=args.seed)
    stylize.save_png(image, args.output)
    first, last = history[0], history[-1]
    print(f"{args.output}: {image.shape[1]}×{image.shape[0]}, features of {extractor.source}; "
          f"style loss {first['style']:.4g} -> {last['style']:.4g}, content loss "
          f"{first['content']:.4g} -> {last['content']:.4g} in {args.steps} steps")
    return 0


def _run(args: argparse.Namespace, dvc_args: list[str]) -> int:
    """Runs `dvc repro` with this environment's python on PATH; other options (e.g. -f, --dry)
    are passed on to dvc repro."""
    from cnnzoo.config import DEFAULT_PARAMS
    from cnnzoo.tools.runner import DEFAULT_TARGETS, run_pipeline

    # Before DVC: with nothing to rerun, DVC would never start a stage that reads params.yaml.
    if _load_params(DEFAULT_PARAMS) is None:
        return 2
    outcome = run_pipeline((args.targets or list(DEFAULT_TARGETS)) + dvc_args, timeline=True)
    sys.stdout.flush()
    print(outcome.summary, file=sys.stdout if outcome.returncode == 0 else sys.stderr)
    return outcome.returncode


class _Parser(argparse.ArgumentParser):
    """Bad arguments: one line and exit status 2, not argparse's usage block."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} -h)\n")


def _command(sub, func, name: str, **kwargs) -> argparse.ArgumentParser:
    """Subcommand `name`, which runs `func(args)`; its `--help` text is `func`'s docstring."""
    parser = sub.add_parser(name, description=func.__doc__ and inspect.cleandoc(func.__doc__),
                            **kwargs)
    parser.set_defaults(func=func)
    return parser


def _input_args(parser: argparse.ArgumentParser) -> None:
    """The input a model is built for (`models`, `sizes`): ImageNet's by default."""
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--num-classes", type=int, default=1000)


def main(argv: list[str] | None = None) -> int:
    logs.setup("WARNING")
    parser = _Parser(prog="cnnzoo", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    r = _command(sub, _run, "run",
                 help="dvc repro, then the leaderboard and the wall time (make run)")
    r.add_argument("targets", nargs="*",
                   help="stages to reproduce (default: report and every stage it needs, i.e. "
                   "all but the slow `sizes`)")
    m = _command(sub, _models, "models",
                 help="registered models with parameters and MACs per image")
    m.add_argument("names", nargs="*", help="models to show (default: all)")
    m.add_argument("--layers", metavar="MODEL", help="per-layer table of one model")
    _input_args(m)
    t = _command(sub, _tconv, "tconv",
                 help="the lecture's transposed-convolution example through "
                 "Keras' Conv2DTranspose")
    t.add_argument("--stride", type=int, default=1, choices=[1, 2, 3])
    c = _command(sub, _check, "check",
                 help="validate a params file")
    c.add_argument("params", nargs="?", default="params.yaml")
    b = _command(sub, _bench, "bench",
                 help="benchmarks (data: input pipeline vs training step; "
                 "train: every architecture vs plain Keras and the matmul rate)")
    b.add_argument("what", choices=["data", "train"])
    b.add_argument("--quick", action="store_true", help="train: fewer steps (about 2 minutes)")
    b.add_argument("--archs", nargs="+", help="train: these architectures (default: base.archs)")
    b.add_argument("--out", default="bench", help="train: folder for results.json / .md")
    b.add_argument("--params", default="params.yaml")
    b.add_argument("--prepared", default="data/prepared")
    b.add_argument("--augmented", default="data/augment")
    b.add_argument("--batches", type=int, default=50)
    s = _command(sub, _sweep, "sweep",
                 help="label sweep: task B's stages at several labels_per_class "
                 "(dvc exp run), then reports/sweep.csv and plots/sweep.png")
    s.add_argument("--labels", type=int, nargs="+", default=[5, 20, 100, 1000])
    s.add_argument("--params", default="params.yaml")
    s.add_argument("--no-restore", action="store_true",
                   help="leave the workspace at the last budget (skips rerunning the default)")
    sd = _command(sub, _seeds, "seeds",
                  help="the spread over seeds: task B's and the other pipelines' stages at N "
                  "seeds (dvc exp run), then reports/seeds.csv")
    sd.add_argument("n", type=int, help="how many seeds (base.seed, base.seed + 1, ...)")
    sd.add_argument("--pretrain", action="store_true", help="retrain the task-A networks too")
    sd.add_argument("--params", default="params.yaml")
    pr = _command(sub, _predict, "predict",
                  help="run an exported .tflite or .keras model on image files")
    pr.add_argument("model", help="a .tflite or .keras file, e.g. exports/mobilenet_v2/"
                    "mobilenet_v2_int8.tflite")
    pr.add_argument("images", nargs="+")
    pr.add_argument("--card", help="model.json (default: beside the model, or exports/<name>/)")
    pr.add_argument("-k", "--top-k", type=int, default=3, help="labels to print (1..classes)")
    pr.add_argument("--invert", action="store_true",
                    help="flip each image's brightness first (dark-on-light images for a model "
                    "trained on light-on-dark ones, or the reverse)")
    pr.add_argument("--max-pixels", type=int, default=MAX_PIXELS,
                    help="refuse larger images before decoding them (default %(default)s)")
    style = _command(sub, _stylize, "stylize",
                     help="neural style transfer (Gatys et al. 2016) of CONTENT in "
                     "the style of STYLE")
    style.add_argument("content")
    style.add_argument("style")
    style.add_argument("-o", "--output", required=True, help="the stylised PNG")
    style.add_argument("--weights", default="auto",
                       help="auto (ImageNet VGG19 if its weights are cached or downloadable, else "
                       "models/pretrain/vgg11.keras), imagenet, or a .keras VGG")
    style.add_argument("--size", type=int, default=256, help="longer side in pixels")
    style.add_argument("--steps", type=int, default=300)
    style.add_argument("--learning-rate", type=float, default=0.02)
    style.add_argument("--content-weight", type=float, default=1.0)
    style.add_argument("--style-weight", type=float, default=10.0)
    style.add_argument("--tv-weight", type=float, default=10.0)
    style.add_argument("--seed", type=int, default=0)
    sf = _command(sub, _sample_folder, "sample-folder",
                  help="write a class folder of real images to try your "
                  "own-data path on (scikit-learn's 1,797 handwritten digits)")
    sf.add_argument("out", help="the folder to write, e.g. data/digits (replaced)")
    po = _command(sub, _promote, "promote",
                  help="ship an architecture's export: register exports/ARCH "
                  "as cnnzoo-mobile and move @mobile to it")
    po.add_argument("arch")
    po.add_argument("--params", default="params.yaml")
    z = _command(sub, _sizes, "sizes",
                 help="deployment sizes: parameters, Keras and TFLite float32 / "
                 "float16 / int8 file sizes of canonical networks (random weights)")
    z.add_argument("names", nargs="*", help="models to measure now instead")
    _input_args(z)
    _command(sub, _robustness, "robustness",
             help="mean corruption accuracy of every family's Keras model and int8 file "
             "(after `cnnzoo run`)")
    args, extra = parser.parse_known_args(argv)
    if args.func is _run:
        return _run(args, extra)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.func not in (_check, _sample_folder, _sweep, _seeds, _robustness):
        # TensorFlow's C++ side announces oneDNN and the CPU's instructions through absl before
        # it reads any log level, once per library it loads: kept for DEBUG, not for the user.
        with logs.native_output("TensorFlow import"):
            import tensorflow  # noqa: F401
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
