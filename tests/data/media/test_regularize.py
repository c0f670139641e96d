"""LLaMA-Factory's image regularisation (mm_plugin _preprocess_image + Qwen2VLPlugin's rules), by hand."""

from __future__ import annotations

import pytest
from PIL import Image

from tunesmith.data.media.regularize import regularize_image, regularized_size


@pytest.mark.parametrize("size, max_pixels, min_pixels, qwen, expected", [
    ((900, 700), 768 * 768, 32 * 32, False, (870, 677)),  # f = sqrt(589824 / 630000) = 0.9676: 870.8, 677.3
    ((64, 64), 768 * 768, 32 * 32, True, (64, 64)),  # within the budget: untouched
    ((16, 16), 768 * 768, 32 * 32, False, (32, 32)),  # f = 2
    ((20, 50), 768 * 768, 32 * 32, False, (20, 50)),  # f = 1.012: sides truncate back (LLaMA-Factory's quirk)
    ((20, 50), 768 * 768, 32 * 32, True, (28, 50)),  # Qwen: a side below 28 is raised to 28
    ((6000, 10), 10 ** 8, 1, True, (5040, 28)),  # -> 6000x28, ratio 214 > 200 -> 28 * 180 wide
    ((10, 6000), 10 ** 8, 1, True, (28, 5040)),
])
def test_sizes(size, max_pixels, min_pixels, qwen, expected):
    assert regularized_size(*size, max_pixels, min_pixels, qwen) == expected
    image = regularize_image(Image.new("L", size, 90), max_pixels, min_pixels, qwen)
    assert image.size == expected and image.mode == "RGB"


def test_palette_image_is_resized_in_its_own_mode_then_converted():
    image = Image.new("P", (100, 100))
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.paste(1, (50, 0, 100, 100))  # right half blue, left half red
    out = regularize_image(image, 50 * 50, 1, True)
    assert out.mode == "RGB" and out.size == (50, 50)
    # nearest resampling of the palette image keeps pure colours (a bicubic RGB resize would blend at the edge)
    assert {out.getpixel((x, 10)) for x in range(50)} == {(255, 0, 0), (0, 0, 255)}
