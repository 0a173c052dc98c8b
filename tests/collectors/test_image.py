"""Image statistics on images made here, against values worked out by hand.

Tolerances: 1e-12 for arrays (same arithmetic), 1e-3 between uint8, uint16 and float versions
of one picture (quantisation), 0.02 on the brightness of a JPEG (lossy).
"""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from collectors.image import FEATURES, ImageDescriber, describe


def test_mid_gray_dark_and_overexposed() -> None:
    gray = describe(np.full((10, 20), 0.5))
    assert (gray["width"], gray["height"], gray["channels"]) == (20.0, 10.0, 1.0)
    assert gray["brightness"] == 0.5 and gray["brightness_std"] == 0.0
    assert gray["contrast"] == 0.0 and gray["sharpness"] == 0.0
    assert gray["overexposed_share"] == gray["underexposed_share"] == 0.0
    assert describe(np.zeros((8, 8, 3), dtype=np.uint8))["underexposed_share"] == 1.0
    bright = np.full((8, 8, 3), 255, dtype=np.uint8)
    bright[:2] = 100  # a quarter of the rows not overexposed
    assert describe(bright)["overexposed_share"] == 0.75
    assert list(describe(bright)) == list(FEATURES)


def test_checkerboard_sharpness_by_hand() -> None:
    # 0/1 checkerboard (x 255): every interior pixel has 4 neighbours of the other colour, so
    # the Laplacian is +4*255 on black and -4*255 on white, half each: variance (4*255)^2
    board = (np.indices((6, 6)).sum(axis=0) % 2).astype(np.float64)
    assert describe(board)["sharpness"] == pytest.approx((4 * 255) ** 2, rel=1e-12)
    assert describe(board)["contrast"] == 1.0 and describe(board)["brightness_std"] == 0.5


def test_blur_lowers_sharpness() -> None:
    rng = np.random.default_rng(0)
    noisy = rng.uniform(size=(64, 64))
    blurred = (noisy[:-2, :-2] + noisy[1:-1, 1:-1] + noisy[2:, 2:] + noisy[:-2, 2:]) / 4
    assert describe(blurred)["sharpness"] < describe(noisy[1:-1, 1:-1])["sharpness"] / 2


def test_pure_red_saturation_and_colorfulness() -> None:
    red = np.zeros((4, 4, 3), dtype=np.uint8)
    red[..., 0] = 255
    stats = describe(red)
    assert stats["saturation"] == 1.0
    # rg = 255, yb = 127.5 everywhere: no spread, 0.3 * sqrt(255^2 + 127.5^2)
    assert stats["colorfulness"] == pytest.approx(0.3 * np.hypot(255, 127.5), rel=1e-12)
    assert stats["brightness"] == pytest.approx(0.299, rel=1e-12)


def test_grayscale_equals_three_equal_channels_and_alpha_is_ignored() -> None:
    rng = np.random.default_rng(1)
    gray = rng.integers(0, 256, size=(16, 16), dtype=np.uint8)
    one, three = describe(gray), describe(np.stack([gray] * 3, axis=2))
    for key in ("brightness", "brightness_std", "contrast", "sharpness"):
        assert one[key] == pytest.approx(three[key], rel=1e-12, abs=1e-12)
    rgba = np.concatenate([np.stack([gray] * 3, axis=2), np.zeros((16, 16, 1), np.uint8)], axis=2)
    assert describe(rgba) == three


def test_pixel_types_give_the_same_numbers() -> None:
    rng = np.random.default_rng(2)
    picture = rng.integers(0, 256, size=(12, 12, 3)).astype(np.uint8)
    as_uint8 = describe(picture)
    as_float = describe(picture / 255.0)
    as_uint16 = describe(picture.astype(np.uint16) * 257)
    for key in ("brightness", "saturation", "contrast"):
        assert as_float[key] == pytest.approx(as_uint8[key], abs=1e-12)
        assert as_uint16[key] == pytest.approx(as_uint8[key], abs=1e-3)


def test_pil_and_encoded_bytes() -> None:
    rng = np.random.default_rng(3)
    picture = rng.integers(0, 256, size=(20, 30, 3)).astype(np.uint8)
    image = Image.fromarray(picture)
    assert describe(image) == describe(picture)
    png, jpeg = io.BytesIO(), io.BytesIO()
    image.save(png, format="PNG")
    image.save(jpeg, format="JPEG", quality=95)
    assert describe(png.getvalue()) == describe(picture)
    assert describe(jpeg.getvalue())["brightness"] == pytest.approx(
        describe(picture)["brightness"], abs=0.02
    )
    assert describe(Image.fromarray(picture[:, :, 0]))["channels"] == 1.0


def test_bad_images_are_refused() -> None:
    with pytest.raises(ValueError, match="an image is"):
        describe(np.zeros((4, 4, 2)))
    with pytest.raises(ValueError, match="an image is"):
        describe(np.zeros(4))
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        describe(np.full((4, 4), 2.0))
    with pytest.raises(ValueError, match="empty"):
        describe(np.zeros((0, 4)))
    with pytest.raises(ValueError, match="pixel type"):
        describe(np.zeros((4, 4), dtype=np.int64))
    with pytest.raises(TypeError, match="expected a numpy array"):
        describe("cat.png")


def test_describer_with_an_embedding_hook_is_json_ready() -> None:
    import json

    describer = ImageDescriber(embed=lambda image: np.arange(3, dtype=np.float32))
    features = describer(np.zeros((5, 5, 3), dtype=np.uint8))
    assert features["embedding"] == [0.0, 1.0, 2.0]
    assert set(features) == {f"image.{k}" for k in FEATURES} | {"embedding"}
    json.dumps(features)


def test_importing_does_not_load_pillow_or_torch() -> None:
    code = "import collectors.image, sys; print('PIL' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
