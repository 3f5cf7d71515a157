"""Held-out deduction benchmark data: synthetic tabletop scenes with exact masks, and queries.

Written before any failure was looked at, and never used as unit-test fixtures (tests build their own
scenes). Each scene is drawn with numpy/OpenCV (flat colours, a little noise and shading; later
objects occlude earlier ones and the masks are updated, so every mask is exact). Objects are known
shapes: boxes (rectangles), squares, discs, rings / washers (a hole), bars (elongated), triangles,
frames, striped boxes; some carry printed labels (set as ``Region.text``, as OCR would give them);
some scenes have captions (as a captioner would give them), some have none (a robot without a
captioner). Tabletop scenes have a table (role "support") and a wall (role "background"); those
roles are set on ``Region.role`` when the Region type has that field.

A case is (scene, category, answer object names, phrasings); each phrasing is one query, written the
way people talk to robots (commands, questions, fragments). Answer () = nothing in the scene fits.

Conventions the answers follow (documented in docs/ARCHITECTURE.md, deduce section):
* "closest to me / the camera" without depth: the object whose lowest point is lowest in the image
  (a camera looking down at a table sees nearer things lower in the frame);
* "nearest the top edge": the object whose bounding box comes closest to that image border;
* superlatives, ordinals, counts and "everything" range over objects, not the table or the wall,
  unless the query names them.
"""

from __future__ import annotations

from dataclasses import dataclass

H, W = 480, 640
BACKGROUND = (222, 222, 216)

RED, BLUE, GREEN, YELLOW = (200, 25, 25), (30, 70, 215), (40, 150, 55), (240, 215, 50)
ORANGE, BROWN, PINK, PURPLE = (240, 125, 20), (140, 85, 35), (245, 140, 190), (130, 30, 165)
BLACK, WHITE, GREY = (25, 25, 28), (246, 246, 244), (128, 128, 132)
WALL = (200, 200, 196)


@dataclass(frozen=True)
class BObj:
    """``shape``: rect | disk | ring | frame | triangle | stripes (a rect of two alternating colours);
    ``geom``: rect/stripes (x0, y0, x1, y1), disk (cx, cy, r), ring (cx, cy, r_out, r_in),
    frame (x0, y0, x1, y1, thickness), triangle (x0, y0, x1, y1, x2, y2)."""

    name: str
    shape: str
    geom: tuple
    rgb: tuple[int, int, int]
    caption: str | None = None
    text: tuple[str, ...] = ()
    role: str = "object"
    rgb2: tuple[int, int, int] | None = None  # the second colour of stripes


@dataclass(frozen=True)
class BScene:
    name: str
    objects: tuple[BObj, ...]


SCENES: dict[str, BScene] = {s.name: s for s in [
    BScene("workbench", (
        BObj("red_box", "rect", (50, 60, 190, 150), RED),
        BObj("blue_disc", "disk", (330, 110, 55), BLUE),
        BObj("green_bar", "rect", (430, 40, 610, 65), GREEN),
        BObj("yellow_ring", "ring", (120, 340, 60, 30), YELLOW),
        BObj("orange_triangle", "triangle", (260, 420, 380, 420, 320, 310), ORANGE),
        BObj("purple_square", "rect", (470, 300, 560, 390), PURPLE),
        BObj("black_dot", "disk", (560, 190, 12), BLACK),
    )),
    BScene("sorting", (
        BObj("green_disc_big", "disk", (120, 120, 70), GREEN),
        BObj("green_disc_small", "disk", (300, 110, 35), GREEN),
        BObj("green_box", "rect", (430, 60, 560, 160), GREEN),
        BObj("red_triangle_big", "triangle", (60, 440, 220, 440, 140, 300), RED),
        BObj("red_triangle_small", "triangle", (280, 440, 360, 440, 320, 370), RED),
        BObj("pink_triangle", "triangle", (420, 440, 520, 440, 470, 350), PINK),
        BObj("blue_ring", "ring", (590, 300, 40, 20), BLUE),
    )),
    BScene("tabletop", (
        BObj("wall", "rect", (0, 0, 640, 200), WALL, role="background"),
        BObj("table", "rect", (0, 200, 640, 480), BROWN, role="support"),
        BObj("red_box", "rect", (80, 260, 200, 360), RED),
        BObj("blue_box", "rect", (100, 215, 180, 260), BLUE),
        BObj("green_disc", "disk", (380, 330, 50), GREEN),
        BObj("yellow_bar", "rect", (470, 240, 620, 262), YELLOW),
        BObj("orange_triangle", "triangle", (250, 460, 330, 460, 290, 390), ORANGE),
        BObj("purple_disc", "disk", (560, 420, 25), PURPLE),
    )),
    BScene("labels", (
        BObj("box_fragile", "rect", (40, 200, 180, 340), BROWN, text=("FRAGILE",)),
        BObj("box_keep_dry", "rect", (220, 200, 360, 340), BROWN, text=("KEEP DRY",)),
        BObj("box_plain", "rect", (400, 200, 540, 340), BROWN),
        BObj("white_card", "rect", (80, 400, 220, 460), WHITE, text=("TOOLS",)),
        BObj("red_sign", "disk", (570, 80, 50), RED, text=("STOP",)),
        BObj("blue_tag", "rect", (300, 60, 380, 100), BLUE, text=("A-12",)),
    )),
    BScene("kitchen", (
        BObj("table", "rect", (0, 250, 640, 480), BROWN, "a wooden table", role="support"),
        BObj("mug", "rect", (60, 270, 130, 350), RED, "a red coffee mug"),
        BObj("plate", "disk", (260, 360, 70), WHITE, "a white dinner plate"),
        BObj("apple", "disk", (260, 360, 28), RED, "a red apple"),
        BObj("knife", "rect", (380, 300, 540, 314), GREY, "a kitchen knife"),
        BObj("bottle", "rect", (570, 150, 610, 330), GREEN, "a green glass bottle"),
        BObj("sponge", "rect", (420, 400, 500, 440), YELLOW, "a yellow sponge"),
    )),
    BScene("desk", (
        BObj("laptop", "rect", (200, 160, 440, 320), GREY, "a laptop computer"),
        BObj("phone", "rect", (470, 230, 520, 320), BLACK, "a mobile phone"),
        BObj("pen", "rect", (120, 180, 132, 320), BLUE, "a blue pen"),
        BObj("notebook", "rect", (20, 170, 100, 320), YELLOW, "a yellow notebook"),
        BObj("cup", "disk", (570, 100, 35), WHITE, "a white coffee cup"),
        BObj("tape", "ring", (100, 410, 40, 20), GREY, "a roll of tape"),
        BObj("scissors", "rect", (300, 400, 420, 412), RED, "a pair of scissors"),
    )),
    BScene("patterns", (
        BObj("striped_box", "stripes", (60, 80, 220, 220), BLUE, rgb2=WHITE),
        BObj("plain_box", "rect", (300, 80, 460, 220), BLUE),
        BObj("washer", "ring", (550, 150, 50, 20), GREY),
        BObj("disc", "disk", (120, 360, 55), GREY),
        BObj("frame", "frame", (260, 300, 420, 440, 18), GREEN),
        BObj("labelled_bar", "rect", (470, 380, 620, 410), ORANGE, text=("MAX",)),
    )),
    BScene("row", (
        BObj("o1", "disk", (70, 240, 35), RED),
        BObj("o2", "rect", (150, 205, 220, 275), BLUE),
        BObj("o3", "disk", (300, 240, 35), RED),
        BObj("o4", "triangle", (370, 275, 440, 275, 405, 205), GREEN),
        BObj("o5", "disk", (530, 240, 35), RED),
    )),
    BScene("tray", (
        BObj("tray", "rect", (40, 100, 320, 380), GREY),
        BObj("red_disc", "disk", (120, 180, 35), RED),
        BObj("blue_square", "rect", (200, 260, 280, 340), BLUE),
        BObj("purple_ring", "ring", (470, 200, 90, 50), PURPLE),
        BObj("yellow_dot", "disk", (470, 200, 20), YELLOW),
        BObj("green_bar", "rect", (380, 400, 620, 425), GREEN),
    )),
    BScene("clutter", (
        BObj("red_disc_1", "disk", (80, 80, 30), RED),
        BObj("red_disc_2", "disk", (200, 90, 30), RED),
        BObj("red_disc_3", "disk", (320, 80, 30), RED),
        BObj("blue_box_1", "rect", (420, 50, 520, 130), BLUE),
        BObj("blue_box_2", "rect", (540, 60, 620, 140), BLUE),
        BObj("yellow_sq_1", "rect", (60, 300, 100, 340), YELLOW),
        BObj("yellow_sq_2", "rect", (140, 310, 180, 350), YELLOW),
        BObj("yellow_sq_3", "rect", (220, 300, 260, 340), YELLOW),
        BObj("green_triangle", "triangle", (400, 440, 520, 440, 460, 330), GREEN),
    )),
    BScene("spread", (
        BObj("top_obj", "rect", (250, 10, 330, 60), RED),
        BObj("bottom_obj", "disk", (300, 440, 30), BLUE),
        BObj("left_obj", "rect", (10, 200, 60, 280), GREEN),
        BObj("right_obj", "triangle", (580, 200, 635, 290, 580, 290), YELLOW),
        BObj("centre_obj", "disk", (320, 240, 45), PURPLE),
        BObj("orange_obj", "rect", (450, 360, 520, 420), ORANGE),
    )),
]}

# (scene, category, answer names, phrasings)
_CASES: list[tuple[str, str, str, tuple[str, ...]]] = [
    # ---- colour ------------------------------------------------------------------------------
    ("workbench", "colour", "red_box", ("the red one", "pick up the red thing", "which one is red?")),
    ("workbench", "colour", "blue_disc", ("grab the blue object", "the blue one please")),
    ("workbench", "colour", "green_bar", ("hand me the green thing", "can you get the green one")),
    ("workbench", "colour", "yellow_ring", ("whichever one is yellow", "show me something yellow")),
    ("workbench", "colour", "orange_triangle", ("give me the orange piece", "the orange object")),
    ("workbench", "colour", "purple_square", ("point at the purple one", "where's the purple thing?")),
    ("workbench", "colour", "black_dot", ("the black object", "touch the black one")),
    ("sorting", "colour", "pink_triangle", ("the pink one", "get me the pink thing")),
    ("sorting", "colour", "blue_ring", ("find the blue object", "which thing is blue?")),
    ("sorting", "colour", "green_disc_big green_disc_small green_box", ("all the green things", "select every green object")),
    ("sorting", "colour", "red_triangle_big red_triangle_small", ("every red object", "highlight all the red ones")),
    ("tabletop", "colour", "green_disc", ("the green one", "bring me the green object")),
    ("tabletop", "colour", "purple_disc", ("where is the purple thing?", "the purple one on the table")),
    ("tabletop", "colour", "yellow_bar", ("pick up the yellow thing",)),
    ("kitchen", "colour", "bottle", ("the green thing", "grab the green one")),
    ("kitchen", "colour", "sponge", ("pass me the yellow thing",)),
    ("tray", "colour", "yellow_dot", ("the yellow object",)),
    ("clutter", "colour", "green_triangle", ("the green one", "fetch the green thing")),
    ("spread", "colour", "orange_obj", ("the orange object", "get the orange one")),
    # ---- shape nouns ---------------------------------------------------------------------------
    ("workbench", "shape_noun", "red_box", ("the red box", "pick up the red block", "the red rectangle")),
    ("workbench", "shape_noun", "purple_square", ("the purple square", "grab the purple box")),
    ("workbench", "shape_noun", "blue_disc", ("the blue disc", "the blue circle", "hand me the blue coin")),
    ("workbench", "shape_noun", "yellow_ring", ("the ring", "grab the donut", "the yellow washer")),
    ("workbench", "shape_noun", "orange_triangle", ("the triangle", "the wedge", "the triangular one")),
    ("workbench", "shape_noun", "green_bar", ("pick up the bar", "the stick", "the green rod")),
    ("workbench", "shape_noun", "", ("the purple circle", "the green disc", "the red ring")),
    ("sorting", "shape_noun", "red_triangle_big red_triangle_small pink_triangle", ("every triangle", "all the triangles")),
    ("sorting", "shape_noun", "green_disc_big green_disc_small", ("both discs", "all the circles", "the green discs")),
    ("sorting", "shape_noun", "green_box", ("the green box", "the box")),
    ("sorting", "shape_noun", "blue_ring", ("the ring", "the blue donut")),
    ("patterns", "shape_noun", "disc", ("the disc", "the grey disc")),
    ("patterns", "shape_noun", "washer", ("the grey ring", "the washer")),
    ("row", "shape_noun", "o4", ("the triangle", "the green wedge")),
    ("row", "shape_noun", "o2", ("the square", "the blue block")),
    ("row", "shape_noun", "o1 o3 o5", ("the red circles", "all the discs")),
    ("clutter", "shape_noun", "blue_box_1 blue_box_2", ("the blue boxes", "both blue blocks")),
    ("clutter", "shape_noun", "yellow_sq_1 yellow_sq_2 yellow_sq_3", ("the yellow squares",)),
    ("kitchen", "shape_noun", "plate", ("the plate", "the white plate")),
    ("kitchen", "shape_noun", "knife", ("the knife",)),
    ("desk", "shape_noun", "tape", ("the ring", "the tape roll", "the roll of tape")),
    ("desk", "shape_noun", "pen", ("the pen", "grab the blue pen")),
    # ---- size / comparatives -------------------------------------------------------------------
    ("sorting", "size", "green_disc_big", ("the bigger green disc", "the larger of the green discs", "the biggest green thing", "the bigger of the green ones")),
    ("sorting", "size", "green_disc_small", ("the smaller green disc", "the smaller of the two discs", "the little green circle")),
    ("sorting", "size", "red_triangle_big", ("the larger red triangle", "the big red triangle")),
    ("sorting", "size", "red_triangle_small", ("the smaller red triangle", "the smallest triangle", "the tiniest thing")),
    ("sorting", "size", "green_disc_big", ("the largest object", "which is the biggest one?")),
    ("workbench", "size", "red_box", ("the biggest object", "pick up the largest thing")),
    ("workbench", "size", "black_dot", ("the smallest one", "the tiny one", "the smallest object")),
    ("tabletop", "size", "red_box", ("the biggest object on the table", "the largest item")),
    ("tabletop", "size", "purple_disc", ("the smallest thing", "the littlest object")),
    ("clutter", "size", "blue_box_1", ("the larger blue box", "the bigger of the blue boxes")),
    ("clutter", "size", "blue_box_2", ("the smaller blue box",)),
    ("kitchen", "size", "mug", ("the bigger red thing", "the larger of the red objects")),
    ("tray", "size", "yellow_dot", ("the smaller disc", "the smallest round thing")),
    ("tray", "size", "red_disc", ("the bigger disc",)),
    # ---- position ----------------------------------------------------------------------------
    ("workbench", "position", "red_box", ("the object in the top left", "the thing in the upper left corner")),
    ("workbench", "position", "purple_square", ("the one in the bottom right corner", "what's in the lower right?")),
    ("workbench", "position", "blue_disc", ("the object at the top in the middle", "the thing at the top centre")),
    ("workbench", "position", "yellow_ring", ("the bottom left object", "the thing at the bottom left")),
    ("spread", "position", "centre_obj", ("the object in the centre", "the thing in the middle of the picture")),
    ("spread", "position", "top_obj", ("the thing at the very top", "the object at the top")),
    ("spread", "position", "left_obj", ("the object on the left", "the thing on the far left")),
    ("labels", "position", "box_fragile", ("the box on the left", "the leftmost box")),
    ("labels", "position", "box_plain", ("the box on the right", "the rightmost box")),
    ("labels", "position", "box_keep_dry", ("the middle box", "the box in the middle")),
    ("clutter", "position", "blue_box_2", ("the blue box on the right", "the right blue box")),
    ("clutter", "position", "yellow_sq_1", ("the yellow square on the left", "the leftmost yellow square")),
    ("row", "position", "o5", ("the thing furthest to the right", "the rightmost object")),
    ("row", "position", "o1", ("the leftmost object", "the one on the far left")),
    # ---- ordinal -----------------------------------------------------------------------------
    ("row", "ordinal", "o2", ("the second object from the left", "the 2nd thing from the left", "the second one")),
    ("row", "ordinal", "o3", ("the third one from the left", "the second red circle from the left", "the 2nd red one from the right")),
    ("row", "ordinal", "o5", ("the last red disc", "the third red circle", "the fifth object")),
    ("row", "ordinal", "o1", ("the first thing on the left", "the first object")),
    ("row", "ordinal", "o4", ("the second from the right", "the fourth object")),
    ("row", "ordinal", "", ("the -3rd object", "the 2.5th object", "the tenth object", "the sixth one")),
    ("labels", "ordinal", "box_keep_dry", ("the second box from the left", "the second box")),
    ("labels", "ordinal", "box_fragile", ("the first box",)),
    ("labels", "ordinal", "box_plain", ("the last box", "the third box")),
    ("clutter", "ordinal", "red_disc_2", ("the second red disc from the left", "the middle red disc")),
    ("clutter", "ordinal", "yellow_sq_3", ("the third yellow square", "the last yellow square")),
    # ---- relation ----------------------------------------------------------------------------
    ("tabletop", "relation", "blue_box", ("the box on top of the red box", "what is on the red box?", "the thing stacked on the red box")),
    ("tabletop", "relation", "red_box", ("the thing under the blue box", "the box beneath the blue one")),
    ("workbench", "relation", "yellow_ring", ("the object below the red box", "the thing under the red box")),
    ("sorting", "relation", "red_triangle_small", ("the triangle between the big red one and the pink one",)),
    ("kitchen", "relation", "apple", ("the apple on the plate", "what's on the plate?", "the fruit on the plate")),
    ("desk", "relation", "phone", ("the thing right of the laptop", "the object to the right of the laptop")),
    ("tray", "relation", "blue_square", ("the square on the tray", "the blue thing on the tray")),
    ("tray", "relation", "red_disc blue_square", ("the things on the tray", "everything on the tray")),
    ("spread", "relation", "left_obj", ("the thing left of the purple disc", "what's to the left of the purple one?")),
    ("spread", "relation", "right_obj", ("what's to the right of the purple one", "the object right of the purple disc")),
    ("tabletop", "relation", "green_disc", ("the disc next to the orange triangle",)),
    # ---- containment -------------------------------------------------------------------------
    ("tray", "containment", "yellow_dot", ("what's in the middle of the purple ring?", "the thing inside the ring", "the object within the ring", "what is in the ring")),
    ("tray", "containment", "red_disc blue_square", ("everything in the tray", "what's inside the tray?")),
    ("tray", "containment", "purple_ring", ("the ring with something in it", "the thing that contains the yellow dot")),
    ("tray", "containment", "red_disc", ("the red disc in the tray", "the red thing inside the tray")),
    ("kitchen", "containment", "apple", ("what's in the middle of the plate?", "the thing inside the plate")),
    ("kitchen", "containment", "plate", ("the plate with the apple on it", "the thing holding the apple")),
    ("patterns", "containment", "", ("the thing inside the frame", "what's in the hole of the washer?")),
    # ---- negation / exclusion ------------------------------------------------------------------
    ("sorting", "negation", "red_triangle_big red_triangle_small", ("every triangle apart from the pink one", "all the triangles except the pink one", "the triangles that are not pink")),
    ("sorting", "negation", "red_triangle_big red_triangle_small pink_triangle blue_ring", ("everything but the green things", "all the objects except the green ones")),
    ("sorting", "negation", "green_disc_big", ("all the discs except the small one", "the disc that isn't small")),
    ("sorting", "negation", "green_disc_big green_disc_small", ("the green things other than the box", "the green ones apart from the box")),
    ("sorting", "negation", "pink_triangle", ("the triangle that is not red", "the non-red triangle")),
    ("workbench", "negation", "blue_disc green_bar yellow_ring orange_triangle purple_square black_dot", ("pick up everything but the red box", "everything except the red box")),
    ("workbench", "negation", "red_box blue_disc green_bar yellow_ring orange_triangle purple_square", ("everything except the black dot", "all the objects apart from the black one")),
    ("row", "negation", "o2 o4", ("the objects that aren't red", "everything but the red circles", "the non-red things")),
    ("row", "negation", "", ("the disc that isn't red",)),
    ("clutter", "negation", "yellow_sq_1 yellow_sq_2 yellow_sq_3", ("all the squares except the blue ones", "the squares that aren't blue")),
    ("clutter", "negation", "red_disc_2 red_disc_3", ("every red disc except the leftmost one",)),
    ("tabletop", "negation", "green_disc yellow_bar orange_triangle purple_disc", ("everything but the boxes", "all the objects except the boxes")),
    ("labels", "negation", "box_plain", ("the box without writing", "the box with no label")),
    ("labels", "negation", "box_keep_dry box_plain", ("the boxes that don't say fragile",)),
    # ---- multi-target / count ------------------------------------------------------------------
    ("clutter", "multi", "red_disc_1 red_disc_2 red_disc_3", ("how many red discs are there?", "all three red circles", "count the red discs")),
    ("clutter", "multi", "yellow_sq_1 yellow_sq_2 yellow_sq_3", ("count the yellow squares", "how many yellow things are there")),
    ("clutter", "multi", "blue_box_1 blue_box_2", ("the two blue boxes", "both blue boxes")),
    ("clutter", "multi", "red_disc_1 red_disc_2 red_disc_3 green_triangle", ("the red discs and the green triangle",)),
    ("workbench", "multi", "red_box blue_disc", ("the red box and the blue disc", "grab the red box and the blue circle")),
    ("workbench", "multi", "yellow_ring orange_triangle green_bar", ("the ring, the triangle and the bar",)),
    ("sorting", "multi", "red_triangle_big red_triangle_small", ("both red triangles", "the two red triangles")),
    ("sorting", "multi", "red_triangle_big red_triangle_small pink_triangle", ("how many triangles are there?",)),
    ("row", "multi", "o2 o4", ("the blue square and the green triangle",)),
    ("row", "multi", "o1 o3 o5", ("all the red things", "every red one")),
    # ---- text ------------------------------------------------------------------------------------
    ("labels", "text", "box_fragile", ("the box that says fragile", "the 'FRAGILE' box", "which box reads fragile?")),
    ("labels", "text", "box_keep_dry", ("the box labelled KEEP DRY", "which box says keep dry?")),
    ("labels", "text", "red_sign", ("the sign that says stop", "the red thing with text on it")),
    ("labels", "text", "white_card", ("the card with TOOLS written on it", "the white thing that says tools")),
    ("labels", "text", "blue_tag", ("find the thing that reads A-12", "the tag labelled A12")),
    ("labels", "text", "box_fragile box_keep_dry white_card red_sign blue_tag", ("all the objects with writing on them", "everything with text on it")),
    ("patterns", "text", "labelled_bar", ("the bar with MAX on it", "the thing with writing on it", "the orange bar that says max")),
    ("patterns", "text", "striped_box", ("the object with stripes", "the striped box", "the blue box with stripes")),
    ("patterns", "text", "washer frame", ("the things with a hole", "everything with a hole in it")),
    # ---- edges and the viewer ----------------------------------------------------------------------
    ("spread", "edge_viewer", "top_obj", ("the thing nearest the top edge", "the object closest to the top of the image", "the one furthest from me")),
    ("spread", "edge_viewer", "bottom_obj", ("what's closest to the bottom edge?", "the object closest to me", "the thing nearest the camera")),
    ("spread", "edge_viewer", "left_obj", ("the object nearest the left edge of the image", "the thing closest to the left edge")),
    ("spread", "edge_viewer", "right_obj", ("the one closest to the right edge", "the object nearest the right border")),
    ("tabletop", "edge_viewer", "orange_triangle", ("the object closest to me", "the thing nearest to the camera", "grab the one closest to you")),
    ("tabletop", "edge_viewer", "blue_box", ("the object nearest the top edge",)),
    ("workbench", "edge_viewer", "green_bar", ("the thing nearest the top edge", "the object closest to the top border")),
    ("workbench", "edge_viewer", "orange_triangle", ("the object nearest to me", "closest to the bottom of the picture")),
    ("workbench", "edge_viewer", "red_box", ("the object closest to the left edge",)),
    # ---- support / background words ------------------------------------------------------------
    ("tabletop", "relation", "table", ("the table", "the surface everything is on")),
    ("tabletop", "relation", "wall", ("the wall", "the background")),
    # ---- purpose (reaches the LLM) ----------------------------------------------------------------
    ("kitchen", "purpose", "knife", ("something to cut with", "what can I use to slice bread?", "hand me something sharp")),
    ("kitchen", "purpose", "mug", ("something to drink coffee from", "what can I drink from?")),
    ("kitchen", "purpose", "sponge", ("something to clean the table with", "what could I wipe the counter with?")),
    ("kitchen", "purpose", "apple", ("something to eat", "I'm hungry, give me a snack")),
    ("desk", "purpose", "pen", ("something to write with", "what can I use to sign a letter?")),
    ("desk", "purpose", "scissors", ("something to cut paper with", "what could I use to cut this ribbon?")),
    ("desk", "purpose", "phone", ("what can I use to call someone?", "something to make a phone call")),
    ("desk", "purpose", "cup", ("something to drink tea from",)),
    ("desk", "purpose", "laptop", ("something to type an email on",)),
    # ---- more phrasings (second batch, written before any run) ----------------------------------
    ("clutter", "multi", "blue_box_1 blue_box_2", ("how many blue boxes do you see?", "pick up both of the blue boxes")),
    ("clutter", "multi", "yellow_sq_1 yellow_sq_2 yellow_sq_3 green_triangle", ("the yellow squares and the triangle",)),
    ("workbench", "multi", "red_box purple_square", ("the red box and the purple square", "both boxes")),
    ("workbench", "multi", "blue_disc black_dot", ("the blue disc and the black dot",)),
    ("sorting", "multi", "green_disc_big green_disc_small green_box", ("how many green things are there?", "count the green objects")),
    ("tabletop", "multi", "red_box blue_box", ("the two boxes", "both of the boxes", "the red box and the blue box")),
    ("tray", "multi", "red_disc yellow_dot", ("the red disc and the yellow dot",)),
    ("spread", "multi", "top_obj bottom_obj", ("the top object and the bottom object",)),
    ("tray", "containment", "yellow_dot", ("what is sitting inside the purple ring?", "find the dot in the ring")),
    ("tray", "containment", "blue_square", ("the square inside the tray", "the blue thing within the tray")),
    ("kitchen", "containment", "apple", ("what's lying in the plate", "the red thing within the plate")),
    ("spread", "edge_viewer", "bottom_obj", ("which object is nearest to you?", "the blue disc closest to me")),
    ("spread", "edge_viewer", "top_obj", ("the object farthest from the camera",)),
    ("clutter", "edge_viewer", "green_triangle", ("the object closest to me", "the thing nearest the bottom edge")),
    ("clutter", "edge_viewer", "blue_box_2", ("the object nearest the right edge",)),
    ("row", "edge_viewer", "o1", ("the object closest to the left edge", "the thing nearest the left border of the picture")),
    ("labels", "text", "red_sign", ("the STOP sign", "which thing says STOP?")),
    ("labels", "text", "box_keep_dry", ("the keep dry box", "grab the box with 'KEEP DRY' on it")),
    ("labels", "text", "white_card", ("the card labelled tools",)),
    ("patterns", "text", "plain_box", ("the plain blue box", "the blue box without stripes")),
    ("desk", "relation", "pen", ("the pen next to the notebook", "the thing between the notebook and the laptop")),
    ("kitchen", "relation", "sponge", ("the thing below the knife", "the object under the knife")),
    ("tabletop", "relation", "blue_box", ("the blue box on the red one", "which box is on top?")),
    ("workbench", "relation", "purple_square", ("the square right of the triangle", "the thing to the right of the orange triangle")),
    ("row", "ordinal", "o2", ("the 2nd object", "pick the second thing from the left")),
    ("row", "ordinal", "o3", ("the middle object", "the third object")),
    ("clutter", "ordinal", "red_disc_1", ("the first red disc", "the leftmost red circle")),
    ("clutter", "ordinal", "blue_box_1", ("the first blue box from the left",)),
    ("labels", "ordinal", "box_plain", ("the third box from the left", "the first box from the right")),
    ("workbench", "position", "black_dot", ("the object on the right in the middle", "the thing in the middle on the right")),
    ("tabletop", "position", "purple_disc", ("the object in the bottom right", "the thing in the bottom right corner")),
    ("clutter", "position", "green_triangle", ("the object at the bottom right", "the thing in the lower right of the picture")),
    ("sorting", "position", "green_box", ("the thing in the top right", "the object at the top right")),
    ("tray", "negation", "red_disc", ("the disc that isn't yellow", "the red disc that is not in the ring")),
    ("workbench", "negation", "blue_disc black_dot", ("the round things that aren't rings", "the circles except the ring")),
    ("patterns", "negation", "plain_box", ("the box that isn't striped", "the blue box that is not patterned")),
    ("row", "negation", "o1 o3", ("the red discs except the rightmost one",)),
    ("desk", "shape_noun", "cup", ("the cup", "the white cup")),
    ("workbench", "shape_noun", "black_dot", ("the black disc", "the small circle")),
    ("tray", "shape_noun", "purple_ring", ("the ring", "the purple donut")),
    ("tray", "shape_noun", "green_bar", ("the bar", "the green stick")),
    ("sorting", "size", "green_disc_big", ("the big green disc", "the bigger circle")),
    ("workbench", "size", "black_dot", ("the tiniest object",)),
    ("row", "colour", "o2", ("the blue one", "which one is blue?")),
    ("row", "colour", "o4", ("the green thing",)),
    ("patterns", "colour", "frame", ("the green object", "hand me the green thing")),
    ("labels", "colour", "blue_tag", ("the blue thing",)),
    ("spread", "absent", "", ("the green disc", "the thing left of the green box", "the second purple one")),
    ("row", "absent", "", ("the yellow circle", "the blue triangle")),
    ("desk", "absent", "", ("the red mug", "the orange phone")),
    # ---- third batch (issue 16, affordances + parser gaps; written before any run of them) -------
    ("kitchen", "purpose", "knife", ("anything I could chop an onion with?",)),
    ("kitchen", "purpose", "mug", ("I'm thirsty",)),
    ("kitchen", "purpose", "sponge", ("I need to mop up a spill",)),
    ("kitchen", "purpose", "apple", ("something edible",)),
    ("desk", "purpose", "pen", ("something to jot a note down with",)),
    ("desk", "purpose", "notebook", ("what can I take notes in?",)),
    ("desk", "purpose", "tape", ("something to stick two sheets of paper together",)),
    ("desk", "purpose", "phone", ("what should I use to ring my mum?",)),
    ("desk", "purpose", "cup", ("give me something to drink from",)),
    ("desk", "purpose", "laptop", ("something I can browse the web on",)),
    ("desk", "absent", "", ("something to eat", "I'm starving, anything to eat?")),
    ("kitchen", "absent", "", ("something to type on",)),
    ("workbench", "shape_noun", "blue_disc", ("follow the blue disc", "keep tracking the blue circle")),
    ("workbench", "shape_noun", "purple_square", ("track the purple square",)),
    ("workbench", "colour", "green_bar", ("keep an eye on the green one", "watch the green thing")),
    ("labels", "text", "box_fragile", ("the box with FRAGILE written on it", "the box that has fragile printed on it")),
    ("labels", "text", "white_card", ("the card with TOOLS written on it",)),
    ("tabletop", "relation", "blue_box", ("what is on the red box?", "what's sitting on top of the red box?")),
    ("tabletop", "position", "blue_box", ("the highest thing on the table", "the topmost object on the table")),
    ("tabletop", "position", "orange_triangle", ("the lowest thing on the table",)),
    ("tabletop", "absent", "", ("the white box", "the pink thing on the table")),
    ("row", "absent", "", ("the purple square", "the red triangle")),
    ("labels", "shape_noun", "box_fragile box_keep_dry box_plain", ("all the boxes", "how many boxes are there?")),
    # ---- absent / content-free / contradictory ------------------------------------------------
    ("workbench", "absent", "", ("???", "the", "um", "hello", "the brown elephant", "a green triangle",
                                "the red blue box", "the red one that is not red", "the thing that is round and square")),
    ("sorting", "absent", "", ("the yellow triangle", "the purple ring", "the orange one", "the black box")),
    ("labels", "absent", "", ("the yellow box", "the fifth box", "the box that says danger")),
    ("tray", "absent", "", ("the pink disc", "the thing inside the yellow dot", "the triangle")),
    ("kitchen", "absent", "", ("the banana", "the blue cup", "something to hammer a nail with")),
    ("clutter", "absent", "", ("the white square", "the fourth red disc", "the red triangle")),
]


@dataclass(frozen=True)
class BCase:
    scene: str
    category: str
    answer: tuple[str, ...]
    query: str


def cases() -> list[BCase]:
    out = []
    for scene, cat, answer, phrasings in _CASES:
        names = tuple(answer.split())
        known = {o.name for o in SCENES[scene].objects}
        bad = [n for n in names if n not in known]
        if bad:
            raise ValueError(f"{scene}: unknown answer objects {bad}")
        out.extend(BCase(scene, cat, names, q) for q in phrasings)
    return out


CATEGORIES = ("colour", "shape_noun", "size", "position", "ordinal", "relation", "containment", "negation",
              "multi", "text", "edge_viewer", "purpose", "absent")
