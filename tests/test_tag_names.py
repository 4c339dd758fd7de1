"""The CRNN taggers' tag names: one per output column, in the checkpoints' order."""

from merkit.transfer.pooled import WON_CHECKPOINTS, tags3_names
from merkit.transfer.won_crnn import JAMENDO_TAGS, MSD_TAGS, MTAT_TAGS


def test_each_tagger_names_its_fifty_outputs_once() -> None:
    for tags in (MTAT_TAGS, MSD_TAGS, JAMENDO_TAGS):
        assert len(tags) == 50
        assert len(set(tags)) == 50


def test_jamendo_tags_are_in_label_binarizer_order() -> None:
    # Won's loader binarises with LabelBinarizer, whose classes are sorted
    assert list(JAMENDO_TAGS) == sorted(JAMENDO_TAGS)
    assert JAMENDO_TAGS[0] == "genre---alternative"


def test_tags3_names_follow_the_checkpoint_order() -> None:
    names = tags3_names()
    assert len(names) == 50 * len(WON_CHECKPOINTS) == len(set(names))
    assert [n.split(":")[0] for n in names[::50]] == ["mtat", "msd", "jamendo"]
    assert [c[0] for c in WON_CHECKPOINTS] == ["crnn_mtat.pth", "crnn_msd.pth", "crnn_jamendo.pth"]
    assert names[MTAT_TAGS.index("piano")] == "mtat:piano"
    assert names[50 + MSD_TAGS.index("sad")] == "msd:sad"
    assert names[100 + JAMENDO_TAGS.index("instrument---piano")] == "jamendo:instrument---piano"
