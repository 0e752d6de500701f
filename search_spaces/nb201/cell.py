"""The NAS-Bench-201 cell: its operations, edges, paths and the number of archs (shared by the
space, the network and the tables)."""

from __future__ import annotations

# Order of "size", smallest first: the min arch is all-none, the max arch all-3x3.
OPS = ("none", "skip_connect", "avg_pool_3x3", "nor_conv_1x1", "nor_conv_3x3")
# NAS-Bench-201's own op list (used by its files) and NASLib's op coding.
NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NASLIB_OPS = ("skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")
# Edges in string order as (from node, to node); NASLib orders them (1,2),(1,3),(1,4),(2,3),(2,4),(3,4)
# with nodes numbered from 1.
EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
NASLIB_EDGE_ORDER = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))
NUM_ARCHS = 5**6
# Input-to-output paths of the cell as edge positions in EDGES: 0->3, 0->1->3, 0->2->3, 0->1->2->3.
PATHS = ((3,), (0, 4), (1, 5), (0, 2, 5))
PATH_OPS = OPS[1:]  # "none" cuts a path
