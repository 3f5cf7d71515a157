"""A shadow next to the object casting it is support; a black object next to another is not a shadow
(``roles.SHADOW_MIN_L``: darker than any shadow of the table)."""

from __future__ import annotations

import numpy as np

import gear_edge.masks as gm
from gear_edge.describe.roles import assign_roles

H, W = 240, 320


def _roles(dark: tuple[int, int, int]) -> list[str]:
    image = np.zeros((H, W, 3), np.uint8)
    image[:] = (150, 150, 146)  # a grey table filling the view
    red = np.zeros((H, W), bool)
    red[80:160, 100:160] = True
    patch = np.zeros((H, W), bool)
    patch[80:160, 160:200] = True  # against the red box's right side, on the table
    image[red] = (200, 30, 30)
    image[patch] = dark
    table = ~(red | patch)
    return assign_roles(image, [gm.encode(np.asfortranarray(m)) for m in (table, red, patch)])


def test_the_tables_shadow_beside_an_object_is_support():
    assert _roles((95, 95, 92)) == ["support", "object", "support"]  # the table's grey, about 0.65 of its L*


def test_a_black_object_beside_another_is_an_object():
    assert _roles((28, 28, 30)) == ["support", "object", "object"]
