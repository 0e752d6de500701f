"""The NAS-Bench-201 cell space (``nb201``): pure Python, no torch.

A cell has 4 nodes and 6 edges; each edge carries one of five ops. Arch JSON is
``{"ops": [op of edge 0->1, 0->2, 1->2, 0->3, 1->3, 2->3]}``; the usual string form
``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` and the benchmark index (0..15624, the
position in NAS-Bench-201's own list, shipped as ``nb201_order.txt.gz``) convert
both ways. All 15,625 op assignments are distinct archs, as in the benchmark (no
isomorphism merging).
"""

from __future__ import annotations

import gzip
import itertools
from collections.abc import Mapping, Sequence
from functools import cached_property
from importlib import resources
from typing import Any

import numpy as np

from nas.core.arch import Arch
from nas.core.space import Gene, SearchSpace
from search_spaces.nb201.cell import (
    EDGES,
    NASLIB_EDGE_ORDER,
    NASLIB_OPS,
    NB201_OPS,
    NUM_ARCHS,
    OPS,
    PATH_OPS,
    PATHS,
)


class NB201Space(SearchSpace):
    """NAS-Bench-201 topology space (C=16, N=5 macro skeleton for the network).

    Args:
        config: Only ``"cifar10"``-style naming is accepted for symmetry with other
            spaces; the cell space is the same for every dataset.
    """

    name = "nb201"
    # Predictor files of format 1 did not name their encoding: it was this one then.
    format1_encoding = "path"

    def __init__(self, config: str | None = None) -> None:
        if config not in (None, "", "default"):
            raise ValueError(f"config: the nb201 space has no presets (got {config!r})")
        self._genes = tuple(Gene(f"edge_{i}_{j}", OPS) for i, j in EDGES)

    @property
    def space_id(self) -> str:
        return self.name

    @property
    def genes(self) -> tuple[Gene, ...]:
        return self._genes

    def _to_dict(self, vector: Sequence[int]) -> dict[str, Any]:
        return {"ops": [OPS[i] for i in vector]}

    def _from_dict(self, data: Mapping[str, Any]) -> list[int]:
        extra = sorted(set(data) - {"ops"})
        if extra:
            raise ValueError(f"unknown arch keys {extra}; an nb201 arch is {{'ops': [6 op names]}}")
        if "ops" not in data:
            raise ValueError("arch lacks key 'ops' (6 op names, edges 0->1, 0->2, 1->2, 0->3, 1->3, 2->3)")
        ops = data["ops"]
        if not isinstance(ops, (list, tuple)) or len(ops) != len(EDGES):
            raise ValueError(f"ops: expected a list of {len(EDGES)} op names, got {ops!r}")
        return [
            gene.index(op, f"ops[{k}] (edge {i}->{j})")
            for k, (gene, op, (i, j)) in enumerate(zip(self._genes, ops, EDGES))
        ]

    def size(self) -> int:
        return NUM_ARCHS

    # ------------------------------------------------------------ predictor features
    @cached_property
    def _path_columns(self) -> dict[tuple[str, ...], int]:
        keys = [seq for n in sorted({len(p) for p in PATHS}) for seq in itertools.product(PATH_OPS, repeat=n)]
        return {seq: i for i, seq in enumerate(keys)}

    @property
    def encodings(self) -> tuple[str, ...]:
        return ("summary", "path", "onehot", "counts", "pruned")

    # What latency predictors use. Every edge has the same shape, so an op costs the same on any
    # edge: an eager runtime runs every op (the counts, with the live summary); a graph runtime
    # that eliminates dead nodes (TFLite on phones, the Raspberry Pi's) runs only the ops that
    # feed a node whose output is used (pruned). A latency predictor fitted on measurements picks
    # the view that cross-validates best (``latency_views``); on HW-NAS-Bench's Pixel 3 and
    # Raspberry Pi 4 columns the pruned view lifts 50-arch fits from 54%/51% to ~65%/62% within ±10%.
    latency_encoding = "counts+summary+pruned"
    latency_views = ("counts+summary", "pruned")

    def _features(self, arch: Arch, encoding: str) -> np.ndarray:
        ops = self.make(arch)["ops"]
        if encoding == "summary":
            return self._summary(ops)
        if encoding == "path":
            return self._path_encoding(ops)
        if encoding == "counts":
            return np.array([sum(op == name for op in ops) for name in OPS], dtype=np.float32)
        if encoding == "pruned":
            return self._pruned_counts(ops)
        return self.onehot(arch)

    @staticmethod
    def _summary(ops: Sequence[str]) -> np.ndarray:
        """What the cell computes, in 8 numbers (the default encoding).

        Over the edges that lie on some input-to-output path (ops on dead edges change
        nothing): the number of 3x3 convs, 1x1 convs, pools and skips; then the number of
        input-to-output paths, the most convolutions on one path (depth), whether some path
        has no convolution (an identity/residual path), and whether there is no path at all
        (about 10% accuracy on CIFAR-10).

        Coarse on purpose: with few evaluated archs a Gaussian process generalises from these
        where the 84 path-count columns leave most candidates unrelated to every evaluated
        one. A GP on 20-1,000 random NB201 archs ranks the other archs better with these than
        with the path encoding (Spearman 0.74 vs 0.26 at 20 archs, 0.94 vs 0.88 at 1,000), and
        the predictor-in-the-loop search needs about half the evaluations.
        """
        live: set[int] = set()
        depths: list[int] = []
        for path in PATHS:
            seq = [ops[e] for e in path]
            if "none" not in seq:
                live.update(path)
                depths.append(sum(op.startswith("nor_conv") for op in seq))
        kinds = ("nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3", "skip_connect")
        counts = [sum(ops[e] == op for e in live) for op in kinds]
        extra = [len(depths), max(depths, default=0), float(0 in depths), float(not depths)]
        return np.array(counts + extra, dtype=np.float32)

    @staticmethod
    def _pruned_counts(ops: Sequence[str]) -> np.ndarray:
        """Op counts after dead-node elimination: the ops on edges into a node whose output reaches
        the cell's output (through edges that are not ``none``), per op (``none`` included: an
        exported zero op still multiplies and adds), then how many of the intermediate nodes 1
        and 2 are used. Ops reading an unreachable node still run (their input is a tensor)."""
        used = {3}
        for node in (2, 1, 0):
            if any(i == node and j in used and op != "none" for (i, j), op in zip(EDGES, ops)):
                used.add(node)
        kept = [op for (_, j), op in zip(EDGES, ops) if j in used]
        counts = [sum(op == name for op in kept) for name in OPS]
        return np.array([*counts, float(1 in used) + float(2 in used)], dtype=np.float32)

    def _path_encoding(self, ops: Sequence[str]) -> np.ndarray:
        """Path encoding of the cell, then a "no path" flag.

        The path encoding (as in BANANAS, White et al. 2021) counts the input-to-output
        paths by their op sequence; a path through a ``none`` edge does not exist. Cells
        computing the same function share one vector.
        """
        paths = np.zeros(len(self._path_columns) + 1, dtype=np.float32)
        for path in PATHS:
            seq = tuple(ops[e] for e in path)
            if "none" not in seq:
                paths[self._path_columns[seq]] += 1.0
        paths[-1] = float(not paths[:-1].any())
        return paths

    # ------------------------------------------------------------ static config
    def static_config(self, arch: Arch | Mapping[str, Any]) -> list[dict[str, Any]]:
        """Layer list of the benchmark network (C=16, N=5, 32x32 inputs, 10 classes): the stem,
        15 cells with a reduction block between stages, BN + ReLU, pooling and the classifier
        (for MACs/params and latency tables)."""
        ops = list(self.make(arch)["ops"])
        c, hw = 16, 32
        layers: list[dict[str, Any]] = [
            {"op": "conv", "name": "stem", "in_ch": 3, "out_ch": c, "kernel": 3, "stride": 1, "groups": 1,
             "in_hw": hw, "out_hw": hw, "bias": False, "bn": True, "act": None},
        ]  # fmt: skip
        index = 0
        for stage in range(3):
            if stage > 0:
                layers.append(
                    {"op": "nb201_reduction", "name": f"cells.{index}", "in_ch": c, "out_ch": 2 * c,
                     "in_hw": hw, "out_hw": hw // 2},
                )  # fmt: skip
                c, hw, index = 2 * c, hw // 2, index + 1
            for _ in range(5):
                layers.append({"op": "nb201_cell", "name": f"cells.{index}", "in_ch": c, "in_hw": hw, "out_hw": hw,
                               "ops": ops})  # fmt: skip
                index += 1
        layers.append({"op": "nb201_lastact", "name": "lastact", "in_ch": c, "in_hw": hw, "out_hw": hw})
        layers.append({"op": "pool", "name": "pool", "in_ch": c, "in_hw": hw, "out_hw": 1})
        layers.append({"op": "linear", "name": "classifier", "in_features": c, "out_features": 10, "bias": True})
        return layers

    # ------------------------------------------------------------ string form
    # --------------------------------------------------------- capabilities (nas.core.capabilities)
    def tabular_evaluator(
        self, accuracy_csv: str, dataset: str, latency_csv: str | None, devices: Sequence[str] | None
    ) -> Any:
        """Looks archs up in NAS-Bench-201's tables (accuracy, and latency per device)."""
        from search_spaces.nb201.tabular import TabularNB201Evaluator

        return TabularNB201Evaluator(accuracy_csv, dataset, latency_csv, devices, space=self)

    def init_networks(self, num_classes: int) -> Any:
        """The benchmark's network (C=16, N=5) of each arch, freshly initialised."""
        from search_spaces.nb201.network import NB201Network

        return lambda arch: NB201Network(arch, num_classes=num_classes)

    def input_shape(self) -> tuple[int, int, int]:
        return (3, 32, 32)

    def invalid_reason(self, arch: Arch) -> str | None:
        ops = self.make(arch)["ops"]
        if all(any(ops[e] == "none" for e in path) for path in PATHS):
            return "the cell has no input-to-output path (its output is all zeros)"
        return None

    def from_string(self, text: str) -> Arch:
        """Parses ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``."""
        nodes = text.strip().strip("|").split("|+|") if isinstance(text, str) else []
        if len(nodes) != 3:
            raise ValueError(f"arch string: expected 3 nodes separated by '+', got {text!r}")
        ops = []
        for node_index, node in enumerate(nodes, start=1):
            edges = node.split("|")
            if len(edges) != node_index:
                raise ValueError(f"arch string: node {node_index} needs {node_index} inputs, got {node!r}")
            for source, edge in enumerate(edges):
                op, sep, src = edge.partition("~")
                if sep != "~" or src != str(source):
                    raise ValueError(f"arch string: malformed edge {edge!r} (expected op~{source})")
                ops.append(op)
        return self.make({"ops": ops})

    def to_string(self, arch: Arch) -> str:
        ops = self.make(arch)["ops"]
        nodes, k = [], 0
        for node in range(1, 4):
            nodes.append("|".join(f"{ops[k + s]}~{s}" for s in range(node)))
            k += node
        return "|" + "|+|".join(nodes) + "|"

    def from_naslib(self, encoding: Sequence[int]) -> Arch:
        """Converts NASLib's op-index tuple (edges (1,2),(1,3),(1,4),(2,3),(2,4),(3,4))."""
        if len(encoding) != 6 or any(not 0 <= int(o) < 5 for o in encoding):
            raise ValueError(f"naslib encoding: expected 6 op indices in 0..4, got {list(encoding)}")
        by_edge = {edge: NASLIB_OPS[int(o)] for edge, o in zip(NASLIB_EDGE_ORDER, encoding)}
        return self.make({"ops": [by_edge[edge] for edge in EDGES]})

    # ------------------------------------------------------------ benchmark index
    @cached_property
    def _order(self) -> tuple[str, ...]:
        blob = resources.files("search_spaces.nb201").joinpath("nb201_order.txt.gz").read_bytes()
        lines = gzip.decompress(blob).decode().split()
        if len(lines) != NUM_ARCHS:
            raise RuntimeError(f"nb201_order.txt.gz holds {len(lines)} archs, expected {NUM_ARCHS}")
        return tuple(lines)

    @cached_property
    def _index_of(self) -> dict[str, int]:
        return {code: i for i, code in enumerate(self._order)}

    def _code(self, arch: Arch) -> str:
        return "".join(str(NB201_OPS.index(op)) for op in self.make(arch)["ops"])

    def index(self, arch: Arch) -> int:
        """NAS-Bench-201 index of an arch."""
        return self._index_of[self._code(arch)]

    def from_index(self, index: int) -> Arch:
        """Arch at a NAS-Bench-201 index."""
        if not isinstance(index, int) or not 0 <= index < NUM_ARCHS:
            raise ValueError(f"index: {index!r} is not a NAS-Bench-201 index (0..{NUM_ARCHS - 1})")
        return self.make({"ops": [NB201_OPS[int(c)] for c in self._order[index]]})


__all__ = [
    "EDGES",
    "NASLIB_EDGE_ORDER",
    "NASLIB_OPS",
    "NB201_OPS",
    "NUM_ARCHS",
    "OPS",
    "PATHS",
    "PATH_OPS",
    "NB201Space",
]
