"""The default profile's segmenter: graph-based over-segmentation, colour merging, whole-object merging.

No SAM weights can be installed from the package registries, so the embedded default profile uses a
classical class-agnostic segmenter (scikit-image + OpenCV):

1. Felzenszwalb superpixels on a downscaled image, merged across a region adjacency graph by mean
   colour distance in Lab with lightness weighted by half (shading and shadows change lightness more
   than hue);
2. **whole objects** (``whole_objects``, on by default) on the label map, from region adjacency:
   fragments smaller than ``tiny_frac`` (letters, specks, highlights) join the neighbour they share
   most boundary with; a region enclosed by one neighbour joins it when it carries text (it absorbed
   letters: a printed label) or is small (a logo, a highlight); around the support (the large region
   touching the image border) its fragments (planks, the same colour), its shadows (its
   chromaticity, darker, next to an object) and the support seen through an object's hole (the
   support's colour, enclosed by that object) join the support; last, an object's rim the support
   took (its edge's blended pixels, still of the object's chromaticity) returns to the object, and
   the faces it kept apart join.

It finds object-level regions where objects differ from their surroundings in colour (boxes, cups,
tools on a table, signs), not objects that share their background's colour or parts that need
semantics to separate — SAM2 (the ``sam2`` profile) does that, and depth does (``segment_rgbd``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

import gear_edge.masks as gm
from gear_edge.crops import check_image
from gear_edge.errors import MissingDependencyError
from gear_edge.types import Region


STRIP_WIDTH = 3.0  # px of the working image: a region at most this wide on average (2 area / perimeter) is a boundary strip
TEXT_EDGE_FRAC = 0.06  # a region with this fraction of edge pixels inside carries print (a label's letters)


@dataclass
class ClassicalSegmenter:
    """Felzenszwalb + RAG merge + whole-object merging. Sizes are relative to the image.

    work_side: longer side (px) of the image the graph is built on; scale / sigma: Felzenszwalb
    parameters; merge_threshold: colour distance below which adjacent regions merge; min_area_frac /
    max_regions: smallest region kept (fraction of the image) and how many are kept (largest first);
    whole_objects: the merging of step 2 (module docstring); False = the plain colour segments.
    """

    work_side: int = 384
    scale: float = 100.0
    sigma: float = 0.8
    merge_threshold: float = 12.0
    min_area_frac: float = 0.0005  # below tiny_frac: the regions whole-object merging keeps, a 16x16 px ball too
    max_regions: int = 40
    whole_objects: bool = True
    name: str = "classical-felzenszwalb-rag"
    tiny_frac: float = 0.0006  # fragments below this fraction of the image join a neighbour
    small_frac: float = 0.004  # enclosed regions below this join their encloser (logos, highlights)
    enclosed_share: float = 0.85  # boundary share with one neighbour that makes a region enclosed
    support_de: float = 10.0  # colour distance of a support fragment

    def labels(self, image: np.ndarray, *, enclosed: bool = True) -> np.ndarray:
        """int32 [H, W] label image at the input resolution (labels 0..K-1, unordered);
        ``enclosed=False``: printed / enclosed regions are not merged into their encloser (the RGB-D
        path decides that from depth)."""
        try:
            from skimage import graph
            from skimage.segmentation import felzenszwalb
        except ImportError as exc:
            raise MissingDependencyError(
                "the default (classical) segmenter needs scikit-image: pip install 'gear-edge[default]'"
            ) from exc
        image = check_image(image)
        h, w = image.shape[:2]
        s = min(1.0, self.work_side / max(h, w))
        small = image if s == 1.0 else cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        frac = 0.0005 if self.whole_objects else 0.002
        min_size = max(4, int(frac * small.shape[0] * small.shape[1]))
        lab = felzenszwalb(small, scale=self.scale, sigma=self.sigma, min_size=min_size)
        lab_img = cv2.cvtColor(small.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
        if self.whole_objects:
            lab_img[..., 0] *= 0.5  # lightness counts half: shading and shadows
        if lab.max() > 0:
            if self.whole_objects:
                lab = merge_hierarchical(lab, lab_img, self.merge_threshold)
            else:  # the original path (scikit-image's RAG), kept as the benchmark's reference
                rag = graph.rag_mean_color(cv2.cvtColor(small, cv2.COLOR_RGB2Lab), lab, mode="distance")
                lab = graph.cut_threshold(lab, rag, self.merge_threshold)
        lab = lab.astype(np.int32)
        if self.whole_objects:
            lab = whole_object_merge(lab, small, tiny_frac=self.tiny_frac, small_frac=self.small_frac,
                                     enclosed_share=self.enclosed_share, support_de=self.support_de,
                                     enclosed=enclosed)
        if lab.shape != (h, w):
            lab = cv2.resize(lab, (w, h), interpolation=cv2.INTER_NEAREST)
        return lab

    def _regions(self, lab: np.ndarray) -> list[Region]:
        h, w = lab.shape
        ids, counts = np.unique(lab, return_counts=True)
        order = np.argsort(-counts, kind="stable")
        keep = [int(ids[i]) for i in order if counts[i] >= self.min_area_frac * h * w][: self.max_regions]
        rles = [gm.encode(np.ascontiguousarray(lab == k)) for k in keep]
        if not rles:
            return []
        areas = gm.area(rles)
        boxes = gm.to_bbox(rles)
        return [Region(id=i, rle=r, bbox=tuple(float(v) for v in boxes[i]), area=int(areas[i])) for i, r in enumerate(rles)]

    def segment(self, image: np.ndarray) -> list[Region]:
        image = check_image(image)
        return self._regions(self.labels(image))

    def segment_rgbd(self, image: np.ndarray, depth_m: np.ndarray, intrinsics) -> tuple[list[Region], list[str] | None, np.ndarray | None]:
        """(regions, roles, support plane) from colour + registered depth (``gear_edge.segment.rgbd``);
        without a plane in view: the colour regions, roles None (assigned later from colour)."""
        from gear_edge.segment.rgbd import segment_rgbd

        image = check_image(image)
        masks, roles, plane = segment_rgbd(image, depth_m, intrinsics, self.labels(image, enclosed=False))
        if plane is None:
            return self.segment(image), None, None
        rles = [gm.encode(np.ascontiguousarray(m)) for m in masks]
        if not rles:
            return [], [], plane
        areas, boxes = gm.area(rles), gm.to_bbox(rles)
        regions = [Region(id=i, rle=r, bbox=tuple(float(v) for v in boxes[i]), area=int(areas[i]), role=roles[i])
                   for i, r in enumerate(rles)]
        return regions, roles, plane


def merge_hierarchical(lab: np.ndarray, colour: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy region merging: the most similar 4-adjacent pair (Euclidean distance of mean
    ``colour``, float [h, w, C]) merges first and the means are updated, until no adjacent pair is
    closer than ``threshold``. Unlike a one-shot threshold cut, a gradual ramp of colours (a
    textured table) cannot chain an object into its surroundings."""
    import heapq

    lab = np.unique(lab, return_inverse=True)[1].reshape(lab.shape)
    n = int(lab.max()) + 1
    flat = lab.ravel()
    cnt = np.bincount(flat, minlength=n).astype(np.float64)
    col = colour.reshape(-1, colour.shape[-1]).astype(np.float64)
    sums = np.stack([np.bincount(flat, weights=col[:, c], minlength=n) for c in range(col.shape[1])], 1)
    a = np.concatenate([lab[:, :-1].ravel(), lab[:-1, :].ravel()])
    b = np.concatenate([lab[:, 1:].ravel(), lab[1:, :].ravel()])
    pairs = np.unique(np.stack([np.minimum(a, b), np.maximum(a, b)], 1)[a != b], axis=0)
    nbrs: list[set[int]] = [set() for _ in range(n)]
    for i, j in pairs.tolist():
        nbrs[i].add(j)
        nbrs[j].add(i)
    means = sums / np.maximum(cnt, 1)[:, None]
    d0 = np.linalg.norm(means[pairs[:, 0]] - means[pairs[:, 1]], axis=1) if len(pairs) else np.zeros(0)
    heap = [(float(d), int(i), int(j)) for d, (i, j) in zip(d0.tolist(), pairs.tolist()) if d < threshold]
    heapq.heapify(heap)
    parent = np.arange(n)
    alive = np.ones(n, bool)
    version = np.zeros(n, np.int64)
    stamp: dict[tuple[int, int], tuple[int, int]] = {}
    while heap:
        d, i, j = heapq.heappop(heap)
        if not (alive[i] and alive[j]):
            continue
        key = (min(i, j), max(i, j))
        if stamp.get(key, (0, 0)) != (version[i], version[j]) and key in stamp:
            continue
        # merge the smaller into the larger
        if cnt[i] < cnt[j]:
            i, j = j, i
        parent[j] = i
        alive[j] = False
        cnt[i] += cnt[j]
        sums[i] += sums[j]
        version[i] += 1
        nbrs[i] |= nbrs[j]
        nbrs[i].discard(i)
        nbrs[i].discard(j)
        mi = sums[i] / cnt[i]
        for k in list(nbrs[i]):
            if not alive[k]:
                nbrs[i].discard(k)
                continue
            nbrs[k].discard(j)
            nbrs[k].add(i)
            dk = float(np.linalg.norm(mi - sums[k] / cnt[k]))
            if dk < threshold:
                kk = (min(i, k), max(i, k))
                stamp[kk] = (version[kk[0]], version[kk[1]])
                heapq.heappush(heap, (dk, kk[0], kk[1]))
    root = parent.copy()
    while True:
        nxt = root[root]
        if np.array_equal(nxt, root):
            break
        root = nxt
    return np.unique(root, return_inverse=True)[1][lab]


def _adjacency(lab: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(B int64 [n, n] shared boundary length in pixel edges, border int64 [n] pixels on the image border)."""
    a = np.concatenate([lab[:, :-1].ravel(), lab[:-1, :].ravel()])
    b = np.concatenate([lab[:, 1:].ravel(), lab[1:, :].ravel()])
    diff = a != b
    a, b = a[diff], b[diff]
    B = np.bincount(a * n + b, minlength=n * n).reshape(n, n)
    B = B + B.T
    edge = np.concatenate([lab[0], lab[-1], lab[1:-1, 0], lab[1:-1, -1]])
    return B, np.bincount(edge, minlength=n)


def whole_object_merge(lab: np.ndarray, image: np.ndarray, *, tiny_frac: float, small_frac: float,
                       enclosed_share: float, support_de: float, face_chroma: float = 0.035,
                       enclosed: bool = True) -> np.ndarray:
    """int32 label map with the merges of the module docstring applied (``image``: uint8 RGB at the
    label map's size). ``enclosed=False`` leaves out step 2 (printed / enclosed regions into their
    encloser): the RGB-D path decides that from heights (a box lying on a box is not its print)."""
    lab = np.unique(lab, return_inverse=True)[1].reshape(lab.shape).astype(np.int64)
    n = int(lab.max()) + 1
    if n < 2:
        return lab.astype(np.int32)
    hw = lab.size
    flat = lab.ravel()
    labc = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab).reshape(-1, 3).astype(np.float64)
    rgb = image.reshape(-1, 3).astype(np.float64)
    chrom = rgb[:, :2] / np.maximum(rgb.sum(1, keepdims=True), 1.0)
    area = np.bincount(flat, minlength=n).astype(np.float64)
    sums = np.stack([np.bincount(flat, weights=labc[:, c], minlength=n) for c in range(3)], 1)
    csum = np.stack([np.bincount(flat, weights=chrom[:, c], minlength=n) for c in range(2)], 1)
    # text evidence: edge pixels inside a region (printed letters), from one Canny of the image
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    edges = cv2.Canny(grey, 80, 200) > 0
    edge_in = np.bincount(flat[edges.ravel()], minlength=n).astype(np.float64)  # minus outlines below
    B, border = _adjacency(lab, n)
    B = B.astype(np.float64)
    border = border.astype(np.float64)
    parent = np.arange(n)
    letters = np.zeros(n)  # tiny fragments absorbed (text evidence)
    alive = np.ones(n, bool)

    def merge(i: int, j: int) -> None:  # i into j
        parent[i] = j
        alive[i] = False
        area[j] += area[i]
        sums[j] += sums[i]
        csum[j] += csum[i]
        letters[j] += letters[i]
        edge_in[j] += edge_in[i]
        B[j] += B[i]
        B[:, j] += B[:, i]
        B[j, j] = 0
        B[i] = 0
        B[:, i] = 0
        border[j] += border[i]

    def mean(i):
        return sums[i] / max(area[i], 1)

    def cdist(i, j):
        d = mean(i) - mean(j)
        return float(np.sqrt((0.5 * d[0]) ** 2 + d[1] ** 2 + d[2] ** 2))

    def chroma_d(i, j):
        return float(np.hypot(*(csum[i] / max(area[i], 1) - csum[j] / max(area[j], 1))))

    # 1. tiny fragments into their longest-shared-boundary neighbour (smallest first)
    for i in np.argsort(area, kind="stable"):
        i = int(i)
        if not alive[i] or area[i] >= tiny_frac * hw:
            continue
        if B[i].max() <= 0:
            continue
        j = int(np.argmax(B[i]))
        if cdist(i, j) > 25.0:  # a high-contrast speck: a letter's stroke, a printed mark
            letters[j] += 1
        merge(i, j)
    # 2b. faces of one object: neighbours of one saturated chromaticity (lit top, shaded side)
    grey = np.array([1 / 3, 1 / 3])

    def merge_faces() -> None:
        changed = True
        while changed:
            changed = False
            for i in np.argsort(-area, kind="stable"):
                i = int(i)
                if not alive[i] or border[i] > 0:
                    continue
                ci = csum[i] / max(area[i], 1)
                achromatic = np.hypot(*(ci - grey)) < 0.03
                if not achromatic and np.hypot(*(ci - grey)) < 0.06:
                    continue  # nearly grey: chromaticity cannot tell faces from neighbours
                for j in np.flatnonzero(B[i] > 0):
                    j = int(j)
                    if j == i or not alive[j] or border[j] > 0:
                        continue
                    perim = min(B[i].sum(), B[j].sum())
                    cj = csum[j] / max(area[j], 1)
                    # a white / grey / black object's faces differ in lightness only
                    same = np.hypot(*(cj - grey)) < 0.03 if achromatic else chroma_d(i, j) <= face_chroma
                    if B[i, j] >= 0.1 * perim and same:
                        merge(j, i)
                        changed = True

    merge_faces()
    on_b = np.flatnonzero(alive & (border > 0))
    s0 = int(on_b[np.argmax(area[on_b])]) if len(on_b) else -1  # the provisional support
    # 2. enclosed regions into their encloser: labels (carry letters) and small things
    changed = enclosed
    while changed:
        changed = False
        for i in np.argsort(area, kind="stable"):
            i = int(i)
            if not alive[i]:
                continue
            perim = B[i].sum() + border[i]
            if perim <= 0 or border[i] > 0:
                continue
            j = int(np.argmax(B[i]))
            inside_edges = edge_in[i] - 0.5 * perim  # Canny marks about one pixel per outline pair
            printed = inside_edges >= TEXT_EDGE_FRAC * area[i] and inside_edges >= 12  # letters inside it
            if printed and B[i, s0] < 0.15 * perim and j != s0 and border[j] == 0:
                merge(i, j)  # a label on an object (its faces may still be apart): into the longest neighbour
                changed = True
                continue
            if B[i, j] < enclosed_share * perim or area[i] >= 1.5 * area[j] or border[j] > 0:
                continue  # (the support, on the image border, encloses objects: they stay)
            highlight = chroma_d(i, j) <= 0.03 and area[i] < small_frac * hw and area[i] < 0.35 * area[j]
            if letters[i] >= 2 or highlight or printed:
                merge(i, j)
                changed = True
    def perimeter(i: int) -> float:
        return B[i].sum() + border[i]

    def elongated(i: int) -> bool:
        return perimeter(i) ** 2 >= 40.0 * area[i]  # perimeter^2 / area: a disc is 4 pi

    # 2c. blended boundary strips; small detached pieces of an object (a thin leg, a handle cut off by a highlight): the same
    # colour as a larger non-border region within two pixels
    cur = parent.copy()
    for _ in range(4):
        cur = cur[cur]
    for i in np.argsort(area, kind="stable"):
        i = int(i)
        if not alive[i] or border[i] > 0:
            continue
        large = area[i] >= small_frac * hw
        if large and not 2.0 * area[i] <= STRIP_WIDTH * perimeter(i):  # mean width 2 area / perimeter
            continue  # (a strip along a large object's outline is long: its area grows with the outline)
        nb = [int(k) for k in np.flatnonzero(B[i] > 0) if alive[k] and k != i]
        blend = [(a, b) for x, a in enumerate(nb) for b in nb[x + 1:]
                 if cdist(i, a) + cdist(i, b) <= 1.15 * cdist(a, b) and cdist(a, b) > 20]
        if large and not blend:
            continue  # only strips join whatever their area
        if blend and elongated(i):  # a strip of mixed pixels along the boundary of two regions
            a, b = blend[0]
            j = a if B[i, a] >= B[i, b] else b
            merge(i, j)
            cur[cur == i] = j
            continue
        m = (cur[lab] == i).astype(np.uint8)
        ys, xs = np.nonzero(m)
        y0, y1, x0, x1 = max(0, ys.min() - 3), ys.max() + 4, max(0, xs.min() - 3), xs.max() + 4
        ring = cv2.dilate(m[y0:y1, x0:x1], np.ones((5, 5), np.uint8)).astype(bool) & ~m[y0:y1, x0:x1].astype(bool)
        near = np.unique(cur[lab[y0:y1, x0:x1][ring]])
        best = [int(k) for k in near if k != i and alive[k] and border[k] == 0 and area[k] > area[i]
                and chroma_d(i, int(k)) <= face_chroma and cdist(i, int(k)) <= 2 * support_de]
        if best:
            j = max(best, key=lambda k: area[k])
            merge(i, j)
            cur[cur == i] = j
    # 2d. faces again: a blended strip between a lit and a shaded face (2c) kept them apart before
    merge_faces()
    # 3. the support: the largest region on the image border, and its fragments / shadows / hole views
    live = np.flatnonzero(alive)
    on_border = [int(i) for i in live if border[i] > 0]
    if on_border:
        s = max(on_border, key=lambda i: area[i] + 50.0 * border[i])
        if area[s] >= 0.1 * hw:
            for _ in range(3):
                done = True
                for i in np.argsort(area, kind="stable"):
                    i = int(i)
                    if not alive[i] or i == s or area[i] >= area[s]:
                        continue
                    perim = B[i].sum() + border[i]
                    if perim <= 0:
                        continue
                    share_s = B[i, s] / perim
                    close = cdist(i, s) <= support_de
                    others = [int(k) for k in np.flatnonzero(B[i] > 0) if k != s]
                    next_to_object = any(B[i, k] >= 0.1 * perim for k in others)
                    li, ls = mean(i)[0], mean(s)[0]
                    shadow = (chroma_d(i, s) <= 0.03 and ls * 0.4 <= li < ls - 4 and share_s >= 0.2 and next_to_object)
                    fragment = close and share_s >= 0.3
                    enclosed_by = [k for k in others if B[i, k] >= enclosed_share * perim]
                    hole_view = bool(enclosed_by) and cdist(i, s) <= support_de
                    if shadow or fragment or hole_view:
                        merge(i, s)
                        done = False
                if done:
                    break
    # resolve parents and renumber
    root = parent.copy()
    for _ in range(n):
        nxt = root[root]
        if np.array_equal(nxt, root):
            break
        root = nxt
    out = root[flat]
    # 4. cast shadows grown into an object: its pixels of the support's chromaticity, darker than
    # the support, go back to the support (objects whose own chromaticity differs from it)
    if on_border and alive[s]:
        cs = csum[s] / max(area[s], 1)
        ls = mean(s)[0]
        pix_c = cv2.blur(chrom.reshape(lab.shape + (2,)).astype(np.float32), (3, 3)).reshape(-1, 2)
        d_s = np.hypot(*(pix_c - cs).T)
        for i in np.flatnonzero(alive):
            i = int(i)
            if i == s or B[i, s] <= 0:
                continue
            ci = csum[i] / max(area[i], 1)
            if np.hypot(*(ci - cs)) < 0.08:
                continue
            px = out == i
            d_i = np.hypot(*(pix_c[px] - ci).T)
            back = (d_s[px] < 0.035) & (d_s[px] < 0.5 * d_i) & (labc[px, 0] < ls)
            if back.sum() >= 0.05 * px.sum():
                idx = np.flatnonzero(px)[back]
                out[idx] = s
        out = _reclaim_rims(out.reshape(lab.shape), s, pix_c, d_s, cs,
                            {int(i): csum[i] / max(area[i], 1) for i in np.flatnonzero(alive) if border[i] == 0},
                            face_chroma).ravel()
    out = np.unique(out, return_inverse=True)[1]
    return out.reshape(lab.shape).astype(np.int32)


def _reclaim_rims(lab: np.ndarray, support: int, pix_chroma: np.ndarray, d_support: np.ndarray,
                  support_chroma: np.ndarray, chroma: dict[int, np.ndarray], face_chroma: float,
                  reach_px: int = 3) -> np.ndarray:
    """Step 5: an object's rim that the support took back (the blended pixels of a box's edge, 1-3 px
    wide at the working size, often all that separates its lit top from its shaded side): support
    pixels within ``reach_px`` of an object, of that object's chromaticity (3x3-blurred, within
    ``face_chroma``) and far from the support's (>= 0.06), return to it; then objects of one
    chromaticity that now share a boundary join (the faces the rim kept apart). ``lab``: int [h, w]
    labels; ``chroma``: mean rg-chromaticity of the candidate objects (not on the image border)."""
    kernel = np.ones((2 * reach_px + 1, 2 * reach_px + 1), np.uint8)
    far = (lab == support).ravel() & (d_support >= 0.06)
    if not far.any():
        return lab
    out = lab.ravel().copy()
    moved: list[int] = []
    for i, ci in chroma.items():
        if i == support or np.hypot(*(ci - support_chroma)) < 0.08:
            continue  # an object of the support's colour: its rim cannot be told from the support
        near = cv2.dilate((lab == i).astype(np.uint8), kernel).astype(bool).ravel()
        take = near & far & (np.hypot(*(pix_chroma - ci).T) <= face_chroma)
        if take.any():
            out[take] = i
            far &= ~take  # taken: no longer the support's
            moved.append(i)
    if not moved:
        return lab
    out = out.reshape(lab.shape)
    n = int(out.max()) + 1
    B, border = _adjacency(out, n)
    parent = np.arange(n)

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = int(parent[a])
        return a

    for i in moved:
        for j in np.flatnonzero(B[i] > 0).tolist():
            if j == support or j not in chroma or border[j] > 0:
                continue
            perim = min(B[i].sum(), B[j].sum())
            if B[i, j] >= 0.1 * perim and np.hypot(*(chroma[i] - chroma[j])) <= face_chroma:
                parent[find(j)] = find(i)
    roots = np.array([find(a) for a in range(n)])
    return roots[out]
