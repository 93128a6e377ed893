#!/bin/sh
# Builds the Fashion-MNIST ImageFolder tree datasets/fashion-mnist/{train,val}/<label>_<name>/<index>.png
# from Debian's dataset-fashion-mnist package. Idempotent: a finished tree is left alone.
# Options: --limit-train N --limit-val N (class-balanced subsets), --source DIR, --out DIR, --jobs N.
set -eu
exec /usr/bin/python3 "$(dirname "$0")/prepare_fashion_mnist.py" "$@"
