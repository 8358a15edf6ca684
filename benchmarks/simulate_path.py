"""How much code one ``simulate`` call runs: the spikeconv functions it enters and their branches.

Simulates the converted CIFAR-10 VGG (T = 8, 4 test images, the default options and the CPU's default
kernel) under ``sys.setprofile``, collects every spikeconv function entered, and counts the branch points in
their source with ``ast``: ``if`` / ``elif``, conditional expressions, loops, ``try`` handlers, ``match``
cases, and each extra operand of ``and`` / ``or``. A measure of how much a reader must follow, not of speed.

    python benchmarks/simulate_path.py [--checkpoint checkpoints/cifar10_vgg_qrelu.pt]
"""

from __future__ import annotations

import argparse
import ast
import inspect
import sys
import textwrap

import torch

import spikeconv
from spikeconv import ConversionConfig, convert, simulate


def branches(function) -> int:
    """Branch points in ``function``'s own body (nested functions count where they are defined)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    except (OSError, TypeError, SyntaxError):
        return 0
    count = 0
    for node in ast.walk(tree):
        if isinstance(node, (ast.If, ast.IfExp, ast.For, ast.While, ast.ExceptHandler, ast.match_case,
                             ast.comprehension)):
            count += 1
        elif isinstance(node, ast.BoolOp):
            count += len(node.values) - 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="checkpoints/cifar10_vgg_qrelu.pt")
    parser.add_argument("--top", type=int, default=15, help="list the functions with the most branch points")
    args = parser.parse_args()
    from spikeconv.data.loaders import dataset_info, eval_transform, load_split
    from spikeconv.tasks.checkpoint import load_model

    images, _ = load_split("cifar10", "test")
    transform = eval_transform(dataset_info("cifar10"))
    x = torch.stack([transform(torch.from_numpy(images[i])) for i in range(4)])
    snn = convert(load_model(args.checkpoint)[0], x, ConversionConfig(max_strength=2))
    simulate(snn, x, 8)  # warm-up: first-use builds and caches are not the path
    root = spikeconv.__path__[0]
    seen: dict[object, object] = {}

    def profile(frame, event, arg):
        if event == "call" and frame.f_code.co_filename.startswith(root):
            seen.setdefault(frame.f_code, frame.f_code)

    sys.setprofile(profile)
    try:
        simulate(snn, x, 8)
    finally:
        sys.setprofile(None)
    rows = []
    for code in seen:
        module = inspect.getmodule(code)
        function = next((f for f in vars(module).values()
                         if callable(f) and getattr(inspect.unwrap(f), "__code__", None) is code), None) \
            if module else None
        if function is None:  # a method or a nested function: find it by walking the module's classes
            for value in vars(module).values() if module else ():
                for member in vars(value).values() if isinstance(value, type) else ():
                    member = getattr(member, "__func__", member)
                    if getattr(member, "__code__", None) is code:
                        function = member
        rows.append((code.co_filename[len(root) + 1:], code.co_name, branches(function) if function else 0))
    total = sum(r[2] for r in rows)
    print(f"{len(rows)} spikeconv functions entered, {total} branch points")
    for file, name, count in sorted(rows, key=lambda r: -r[2])[:args.top]:
        print(f"  {count:3d}  {file}:{name}")


if __name__ == "__main__":
    main()
