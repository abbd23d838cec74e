import re

from ip2p_core.paired_data import load_pair, read_pairs
from ip2p_core.synthetic_shapes import make_pairs, write_pair_folder

INSTRUCTION = re.compile(r"^(make the (circle|square|triangle) (red|green|blue|yellow)"
                         r"|move the (circle|square|triangle) (left|right|up|down)"
                         r"|remove the (circle|square|triangle))$")


def test_pairs_are_deterministic_and_well_formed():
    first, again = make_pairs(40, seed=3), make_pairs(40, seed=3)
    assert [p.instruction for p in first] == [p.instruction for p in again]
    assert all(a.original.tobytes() == b.original.tobytes() for a, b in zip(first, again))
    for pair in first:
        assert INSTRUCTION.match(pair.instruction), pair.instruction
        assert pair.original.size == pair.edited.size == (32, 32)
        assert pair.original.tobytes() != pair.edited.tobytes()  # every instruction changes something
    assert {p.instruction.split()[0] for p in first} == {"make", "move", "remove"}


def test_remove_leaves_only_background_where_the_shape_was():
    pair = next(p for p in make_pairs(60, seed=1, max_shapes=1) if p.instruction.startswith("remove"))
    assert len(pair.edited.getcolors()) == 1  # one shape, removed: the plain background


def test_written_folder_reads_back(tmp_path):
    pairs = make_pairs(3, seed=0, size=16)
    read = read_pairs(write_pair_folder(tmp_path, pairs))
    assert [p.instruction for p in read] == [p.instruction for p in pairs]
    original, edited = load_pair(read[1])
    assert original.tobytes() == pairs[1].original.tobytes() and edited.tobytes() == pairs[1].edited.tobytes()
