"""Small replicas of the three Kaggle archives, built from what their users have published about them.

Each builder writes real image files with the archive's layout, folder and file names, extensions and
quirks (copies of the whole set, a truncated JPEG, a file that does not open, a non-UTF-8 class list),
and returns what the replica holds, so that a test can check the audit against it exactly.
Images are random colour fields (every photo its own perceptual hash) tinted per genus, so that
near-duplicate grouping only joins the copies planted on purpose and a model still has something to learn.
"""

from __future__ import annotations

import shutil
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

GENERA = (
    "Agaricus",
    "Amanita",
    "Boletus",
    "Cortinarius",
    "Entoloma",
    "Hygrocybe",
    "Lactarius",
    "Russula",
    "Suillus",
)
# The 215 species folders of daniilonishchenko/mushrooms-images-classification-215 (data/data/<name>).
SPECIES_215 = [
    "almond_mushroom",
    "amanita_gemmata",
    "amethyst_chanterelle",
    "amethyst_deceiver",
    "aniseed_funnel",
    "ascot_hat",
    "bay_bolete",
    "bearded_milkcap",
    "beechwood_sickener",
    "beefsteak_fungus",
    "birch_polypore",
    "birch_woodwart",
    "bitter_beech_bolete",
    "bitter_bolete",
    "black_bulgar",
    "black_morel",
    "blackening_brittlegill",
    "blackening_polypore",
    "blackening_waxcap",
    "blue_roundhead",
    "blushing_bracket",
    "blushing_rosette",
    "blushing_wood_mushroom",
    "bovine_bolete",
    "bronze_bolete",
    "brown_birch_bolete",
    "brown_rollrim",
    "bruising_webcap",
    "butter_cap",
    "cauliflower_fungus",
    "cedarwood_waxcap",
    "chanterelle",
    "charcoal_burner",
    "chestnut_bolete",
    "chicken_of_the_woods",
    "cinnamon_bracket",
    "clouded_agaric",
    "clustered_domecap",
    "common_bonnet",
    "common_inkcap",
    "common_morel",
    "common_puffball",
    "common_rustgill",
    "crimped_gill",
    "crimson_waxcap",
    "cucumber_cap",
    "curry_milkcap",
    "deadly_fibrecap",
    "deadly_webcap",
    "deathcap",
    "deer_shield",
    "destroying_angel",
    "devils_bolete",
    "dog_stinkhorn",
    "dryads_saddle",
    "dusky_puffball",
    "dyers_mazegill",
    "earthballs",
    "egghead_mottlegill",
    "elfin_saddle",
    "fairy_ring_champignons",
    "false_chanterelle",
    "false_deathcap",
    "false_morel",
    "false_saffron_milkcap",
    "fenugreek_milkcap",
    "field_blewit",
    "field_mushroom",
    "fleecy_milkcap",
    "fly_agaric",
    "fools_funnel",
    "fragrant_funnel",
    "freckled_dapperling",
    "frosted_chanterelle",
    "funeral_bell",
    "geranium_brittlegill",
    "giant_funnel",
    "giant_puffball",
    "glistening_inkcap",
    "golden_bootleg",
    "golden_scalycap",
    "golden_waxcap",
    "greencracked_brittlegill",
    "grey_knight",
    "grey_spotted_amanita",
    "grisettes",
    "hairy_curtain_crust",
    "heath_waxcap",
    "hedgehog_fungus",
    "hen_of_the_woods",
    "honey_fungus",
    "hoof_fungus",
    "horn_of_plenty",
    "horse_mushroom",
    "inky_mushroom",
    "jelly_ears",
    "jelly_tooth",
    "jubilee_waxcap",
    "king_alfreds_cakes",
    "larch_bolete",
    "leccinum_albostipitatum",
    "liberty_cap",
    "lilac_bonnet",
    "lilac_fibrecap",
    "lions_mane",
    "lurid_bolete",
    "macro_mushroom",
    "magpie_inkcap",
    "meadow_waxcap",
    "medusa_mushroom",
    "morel",
    "mosaic_puffball",
    "oak_bolete",
    "oak_mazegill",
    "oak_polypore",
    "ochre_brittlegill",
    "old_man_of_the_woods",
    "orange_birch_bolete",
    "orange_bolete",
    "orange_grisette",
    "orange_peel_fungus",
    "oyster_mushroom",
    "pale_oyster",
    "panthercap",
    "parasol",
    "parrot_waxcap",
    "pavement_mushroom",
    "penny_bun",
    "peppery_bolete",
    "pestle_puffball",
    "pine_bolete",
    "pink_waxcap",
    "plums_and_custard",
    "poison_pie",
    "poplar_bell",
    "poplar_fieldcap",
    "porcelain_fungus",
    "powdery_brittlegill",
    "purple_brittlegill",
    "red_belted_bracket",
    "red_cracking_bolete",
    "root_rot",
    "rooting_bolete",
    "rooting_shank",
    "rosy_bonnet",
    "ruby_bolete",
    "saffron_milkcap",
    "scaly_wood_mushroom",
    "scarlet_caterpillarclub",
    "scarlet_elfcup",
    "scarlet_waxcap",
    "scarletina_bolete",
    "semifree_morel",
    "sepia_bolete",
    "shaggy_bracket",
    "shaggy_inkcap",
    "shaggy_parasol",
    "shaggy_scalycap",
    "sheathed_woodtuft",
    "silky_rosegill",
    "silverleaf_fungus",
    "slender_parasol",
    "slimy_waxcap",
    "slippery_jack",
    "smoky_bracket",
    "snakeskin_grisette",
    "snowy_waxcap",
    "spectacular_rustgill",
    "splendid_waxcap",
    "splitgill",
    "spotted_toughshank",
    "spring_fieldcap",
    "st_georges_mushroom",
    "stinkhorn",
    "stinking_dapperling",
    "stubble_rosegill",
    "stump_puffball",
    "suede_bolete",
    "sulphur_tuft",
    "summer_bolete",
    "tawny_funnel",
    "tawny_grisette",
    "terracotta_hedgehog",
    "the_blusher",
    "the_deceiver",
    "the_goblet",
    "the_miller",
    "the_prince",
    "the_sickener",
    "thimble_morel",
    "tripe_fungus",
    "trooping_funnel",
    "truffles",
    "tuberous_polypore",
    "turkey_tail",
    "velvet_shank",
    "vermillion_waxcap",
    "warted_amanita",
    "weeping_widow",
    "white_dapperling",
    "white_domecap",
    "white_false_death_cap",
    "white_fibrecap",
    "white_saddle",
    "winter_chanterelle",
    "wood_blewit",
    "wood_mushroom",
    "woodland_inkcap",
    "woolly_milkcap",
    "wrinkled_peach",
    "yellow_false_truffle",
    "yellow_foot_waxcap",
    "yellow_stagshorn",
    "yellow_stainer",
    "yellow_swamp_brittlegill",
]
# How mushrooms.txt writes a few of them (hyphens, dots, a cp1252 apostrophe); the rest are plain.
LISTED_AS = {"st_georges_mushroom": "st.-george\u2019s-mushroom", "dryads_saddle": "dryad\u2019s-saddle"}
ID_CHARS = string.ascii_letters + string.digits + "-_"


@dataclass
class Replica:
    """What a replica holds: files per label (as the publisher counts them), the usable images per label,
    the files the audit must leave out by kind, and (safety) the photos whose label is a conflict."""

    root: Path
    files: dict[str, int] = field(default_factory=dict)
    usable: dict[str, int] = field(default_factory=dict)
    excluded: dict[str, str] = field(default_factory=dict)  # relative path -> kind
    safety_conflicts: set[str] = field(default_factory=set)

    def add(self, label: str, relative: str, kind: str | None = None) -> None:
        self.files[label] = self.files.get(label, 0) + 1
        if kind is None:
            self.usable[label] = self.usable.get(label, 0) + 1
        else:
            self.excluded[relative] = kind


def photo(rng: np.random.Generator, size: tuple[int, int], tint: int, mode: str = "RGB") -> Image.Image:
    """A random 10x10 colour field, smoothly upscaled and tinted: its own perceptual hash every time."""
    cells = rng.integers(0, 256, size=(10, 10, 3)).astype(np.float64)
    cells[..., tint % 3] = 0.5 * cells[..., tint % 3] + 127
    image = Image.fromarray(cells.astype(np.uint8)).resize(size, Image.Resampling.BILINEAR)
    return image.convert(mode)


def _write(rng: np.random.Generator, path: Path, size: tuple[int, int], tint: int, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = photo(rng, size, tint, mode)
    if path.suffix.lower() == ".png":
        image.save(path)
    else:
        image.save(path, format="JPEG", quality=85)


def _kaggle_id(rng: np.random.Generator) -> str:
    return "".join(ID_CHARS[i] for i in rng.integers(0, len(ID_CHARS), size=11))


def build_genus(root: Path, per_class: int = 5, doubled: bool = False, seed: int = 0) -> Replica:
    """``Mushrooms/<Genus>/NNN_<id>.jpg``: 3- and 4-digit prefixes, ids with ``-`` and ``_``.

    Planted: ``Russula/092_43B354vYxm8.jpg`` truncated, a greyscale photo, a same-class duplicate under
    another name, and an HTML error page saved as ``.jpg``. ``doubled``: the older archives' second copy
    under ``mushrooms/Mushrooms/``.
    """
    rng = np.random.default_rng(seed)
    replica = Replica(root)
    base = root / "Mushrooms"
    for tint, genus in enumerate(GENERA):
        for i in range(per_class):
            prefix = f"{i:04d}" if genus == "Boletus" else f"{i:03d}"
            name = f"{prefix}_{_kaggle_id(rng)}.jpg"
            mode = "L" if (genus == "Lactarius" and i == 0) else "RGB"
            _write(rng, base / genus / name, (96, 72), tint, mode)
            replica.add(genus, f"Mushrooms/{genus}/{name}")
    # A duplicate inside a class: the publisher counts it, the audit keeps it (grouped, same split).
    first = sorted((base / "Amanita").iterdir())[0]
    shutil.copy(first, base / "Amanita" / f"{per_class:03d}_{_kaggle_id(rng)}.jpg")
    replica.add("Amanita", "duplicate")
    truncated = base / "Russula" / "092_43B354vYxm8.jpg"
    _write(rng, truncated, (96, 72), 7)
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    replica.add("Russula", "Mushrooms/Russula/092_43B354vYxm8.jpg", "truncated")
    (base / "Suillus" / "404_notfound0.jpg").write_text("<html><body>404 Not Found</body></html>")
    replica.add("Suillus", "Mushrooms/Suillus/404_notfound0.jpg", "not_an_image")
    if doubled:
        shutil.copytree(base, root / "mushrooms" / "Mushrooms")
        for path in (root / "mushrooms").rglob("*.*"):
            replica.excluded[path.relative_to(root).as_posix()] = "copy"
    return replica


def build_safety(root: Path, per_folder: int = 3, genus_copy: int = 2, seed: int = 1) -> Replica:
    """``<label>/<species folder>/<file>`` in the archive's four naming styles, plus its traps.

    - ``Genus_species/Genus_species<N>.png`` (100x100), ``Genus species/<digits>medium.jpg|.jpeg``,
      common names of the 215 set (``horn_of_plenty/0.png``), and bare genera (``edible/Russula/``);
    - ``conditionally_edible/Mushrooms/<Genus>/``: a copy of the genus set, Amanita and Cortinarius
      included: those photos are the safety conflicts, as is ``the_blusher`` (an Amanita) there;
    - the same picture as *Agaricus bisporus* in ``edible`` and *A. californicus* in ``poisonous``;
    - a ``.JPG`` file, and a file that does not open.
    """
    rng = np.random.default_rng(seed)
    replica = Replica(root)

    def put(label: str, folder: str, name: str, tint: int, size: tuple[int, int] = (100, 100)) -> str:
        relative = f"{label}/{folder}/{name}"
        _write(rng, root / relative, size, tint)
        replica.add(label, relative)
        return relative

    for i in range(per_folder):
        put("edible", "Boletus_edulis", f"Boletus_edulis{i}.png", 2)
        put(
            "edible", "Cantharellus cibarius", f"{1000 + i}medium.{'jpeg' if i % 2 else 'jpg'}", 0, (259, 194)
        )
        put("edible", "horn_of_plenty", f"{i}.png", 1, (128, 128))
        put("edible", "Russula", f"{i}.jpg", 7)
        put("edible", "Agaricus_bisporus", f"Agaricus_bisporus{i}.png", 0)
        put("conditionally_edible", "the_blusher", f"{i}.png", 1, (128, 128))
        put("conditionally_edible", "Lactarius_deliciosus", f"Lactarius_deliciosus{i}.png", 6)
        put("poisonous", "Agaricus californicus", f"{2000 + i}medium.jpg", 0, (259, 194))
        put("poisonous", "Entoloma_sinuatum", f"Entoloma_sinuatum{i}.png", 4)
        put("deadly", "Amanita phalloides", f"{3000 + i}medium.jpeg", 1, (259, 194))
        put("deadly", "deathcap", f"{i}.png", 1, (128, 128))
        put("deadly", "Cortinarius_rubellus", f"Cortinarius_rubellus{i}.png", 3)
    replica.safety_conflicts |= {f"conditionally_edible/the_blusher/{i}.png" for i in range(per_folder)}
    for tint, genus in enumerate(GENERA):
        for i in range(genus_copy):
            relative = put(
                "conditionally_edible", f"Mushrooms/{genus}", f"{i:03d}_{_kaggle_id(rng)}.jpg", tint, (96, 72)
            )
            if genus in ("Amanita", "Cortinarius"):
                replica.safety_conflicts.add(relative)
    # One picture under two labels: a duplicate group with conflicting labels.
    shutil.copy(
        root / "edible/Agaricus_bisporus/Agaricus_bisporus0.png",
        root / "poisonous/Agaricus californicus/2999medium.png",
    )
    replica.add("poisonous", "poisonous/Agaricus californicus/2999medium.png")
    put("deadly", "Amanita_virosa", "Amanita_virosa0.JPG", 1)
    (root / "poisonous" / "Entoloma_sinuatum" / "Entoloma_sinuatum9.png").write_bytes(
        b"\x89PNG\r\n\x1a\n" + bytes(40)
    )
    replica.add("poisonous", "poisonous/Entoloma_sinuatum/Entoloma_sinuatum9.png", "not_an_image")
    return replica


def build_species215(root: Path, copy_outside: bool = True, seed: int = 2) -> Replica:
    """``data/data/<name>/<n>.png`` for all 215 species (4 to 7 each: "at least 4 per class"),
    ``mushrooms.txt`` (CRLF, cp1252 apostrophes, hyphens and dots), and (``copy_outside``) the same
    folders again beside ``data/``."""
    rng = np.random.default_rng(seed)
    replica = Replica(root)
    classes = root / "data" / "data"
    per_class = {name: 4 + index % 4 for index, name in enumerate(SPECIES_215)}
    for tint, name in enumerate(SPECIES_215):
        for i in range(per_class[name]):
            _write(rng, classes / name / f"{i}.png", (48, 48), tint)
            replica.add(name, f"data/data/{name}/{i}.png")
    listed = [LISTED_AS.get(name, name.replace("_", "-")) for name in SPECIES_215]
    (root / "mushrooms.txt").write_bytes("\r\n".join(listed).encode("cp1252"))
    if copy_outside:
        # The copy beside data/ comes first (the top folder is read first); data/data/ then repeats it.
        for name in SPECIES_215:
            shutil.copytree(classes / name, root / name)
            for i in range(per_class[name]):
                replica.excluded[f"data/data/{name}/{i}.png"] = "copy"
        replica.excluded["mushrooms.txt"] = "unlabelled"
    return replica


#: Caltech-256 categories the replica holds (``<NNN>.<name>``), one of them mushrooms.
CALTECH_CATEGORIES = (
    "001.ak47",
    "010.beer-mug",
    "045.computer-keyboard",
    "056.dog",
    "084.giraffe",
    "104.homer-simpson",
    "121.kayak",
    "147.mushroom",
    "159.people",
    "257.clutter",
)


def build_caltech256(root: Path, per_category: int = 4, seed: int = 3) -> Replica:
    """``256_ObjectCategories/<NNN>.<name>/<NNN>_<NNNN>.jpg``, as jessicali9530/caltech256 unpacks: objects,
    animals, people and clutter, and the ``147.mushroom`` category a not-mushroom set must not give."""
    rng = np.random.default_rng(seed)
    replica = Replica(root)
    for tint, category in enumerate(CALTECH_CATEGORIES):
        number = category.split(".")[0]
        for i in range(per_category):
            relative = f"256_ObjectCategories/{category}/{number}_{i + 1:04d}.jpg"
            _write(rng, root / relative, (80, 60), tint)
            replica.add(category, relative, "mushroom" if "mushroom" in category else None)
    return replica


def in_kagglehub_cache(cache: Path, handle: str, version: int, build: Callable[[Path], Replica]) -> Replica:
    """A replica where kagglehub leaves a download of ``owner/name`` version ``version`` (complete)."""
    folder = cache / "datasets" / handle / "versions" / str(version)
    replica = build(folder)
    (folder.parent.parent / f"{version}.complete").touch()
    return replica


def fill_cache(cache: Path, version: int, complete: bool = True, per_class: int = 2) -> Path:
    """What kagglehub leaves after downloading ``SLUG`` version ``version``."""
    folder = (
        cache
        / "datasets"
        / "maysee"
        / "mushrooms-classification-common-genuss-images"
        / "versions"
        / str(version)
    )
    build_genus(folder, per_class=per_class, seed=version)
    if complete:
        (folder.parent.parent / f"{version}.complete").touch()
    return folder


SPECIES = "daniilonishchenko/mushrooms-images-classification-215"


SAFETY = "zedsden/mushroom-classification-dataset"


CALTECH = "jessicali9530/caltech256"


GENUS = "maysee/mushrooms-classification-common-genuss-images"
