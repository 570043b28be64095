"""Deterministic, LAION-shaped demo shards, so a fresh clone builds a meaningful site offline.

The rows are synthetic: captions are assembled from topic templates, hosts follow the mix seen in
LAION (Pinterest, Shopify, stock-photo and print-on-demand sites first, then a long tail), and the
score columns follow the published marginals of laion2B-en (see ``shared/LAION_FACTS.md``):

- ``similarity``: every row passed the 0.28 CLIP filter (mean ~0.32);
- ``punsafe``: 2.9 % at or over 0.5; ``pwatermark``: 6.1 % at or over 0.8;
- ``aesthetic``: the V1 predictor's buckets (0-1: 0.12 % ... 5-6: 27.72 % ... 9-10: ~0 %);
- sizes: both sides >= 256 px for ~57 %, >= 512 for ~21 %, >= 1024 for ~3 %;
- captions: median ~48 characters, mean ~67, a few with raw HTML as in real alt text.

Every URL is under the reserved ``.example`` top-level domain (RFC 2606 / RFC 6761), so no demo
link can ever point anywhere real; the site knows a demo build and shows no images or image
links for its rows.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


GENERATOR_VERSION = "2"
DEFAULT_ROWS = 120_000
DEFAULT_SHARDS = 4

#: Reserved names (RFC 2606 / RFC 6761): no demo link can ever be registered by anyone, so a
#: published demo site points nowhere real. Hosts imitate the LAION mix by shape only.
DEMO_TLD = ".example"

# host, weight, topics it mostly serves
HOSTS: list[tuple[str, float, tuple[str, ...]]] = [
    ("i.pinboard.example", 9.0, ("fashion", "art", "home", "food", "wedding")),
    ("cdn.shopfront.example", 8.0, ("fashion", "jewelry", "home", "product")),
    ("thumbs.stockphotos.example", 3.0, ("stock", "travel", "food")),
    ("rlv.printondemand.example", 2.2, ("product", "wedding")),
    ("images.bigmarket.example", 1.8, ("product", "book")),
    ("images.artprints.example", 1.6, ("art", "travel")),
    ("previews.stockimages.example", 1.5, ("stock",)),
    ("photos.photohost.example", 1.2, ("travel", "sport")),
    ("i.craftmarket.example", 1.4, ("jewelry", "art", "wedding")),
    ("media.newsphotos.example", 1.0, ("stock", "sport")),
    ("i.auctions.example", 1.3, ("product", "car")),
    ("images-na.bigmarket.example", 1.2, ("book", "product")),
    ("static.sitebuilder.example", 0.9, ("home", "wedding")),
    ("bucket.cloudfiles.example", 0.8, ("product", "stock")),
    ("upload.wiki.example", 0.7, ("travel", "art", "car")),
    ("i.videosite.example", 0.6, ("sport", "car")),
    ("farm4.photoshare.example", 0.7, ("travel", "pet")),
    ("cdn.newsnetwork.example", 0.3, ("sport", "travel")),
    ("images.blogplatform.example", 0.8, ("wedding", "food", "home")),
    ("live.photoshare.example", 0.6, ("pet", "travel")),
]
TAIL_WEIGHT = 18.0  # share of rows on the long tail of small sites
TAIL_SITES = 6000

# Each topic has caption templates; a template's {fields} are drawn from the topic's lists, except
# that one entry of "combos" (if any) is drawn first and fixes the fields that must agree with
# each other (a make with its models, a dish with what goes in it, an animal with its young).
TOPICS: dict[str, dict] = {
    "fashion": {
        "templates": [
            "{adj} {colour} {garment} for women",
            "{brand} {colour} {garment} - size {size}",
            "women's {adj} {garment} with {detail}",
            "{colour} {garment} outfit idea",
            "summer {garment} in {colour} with {detail}",
        ],
        "adj": ["elegant", "casual", "vintage", "boho", "floral", "oversized", "slim fit", "cute"],
        "garment": ["dress", "maxi dress", "blouse", "cardigan", "denim jacket", "skirt", "jumpsuit", "sweater"],
        "detail": ["lace trim", "puff sleeves", "a v-neck", "pockets", "ruffles", "a belt"],
    },
    "jewelry": {
        "templates": [
            "{metal} {stone} {piece}",
            "handmade {metal} {piece} with {stone}",
            "{adj} {stone} engagement ring in {metal}",
            "{piece} - {metal} - {stone} - gift for her",
        ],
        "metal": ["sterling silver", "14k gold", "rose gold", "platinum"],
        "stone": ["diamond", "sapphire", "opal", "emerald", "pearl", "moonstone"],
        "piece": ["necklace", "ring", "earrings", "bracelet", "pendant"],
        "adj": ["vintage", "minimalist", "art deco", "dainty"],
    },
    "home": {
        "templates": [
            "{adj} {room} with {item}",
            "{adj} {room} decor ideas {year}",
            "{colour} {item} in a {adj} {room}",
            "how to style {item} in your {room}",
        ],
        "combos": [
            {"room": "living room", "item": "a velvet sofa"}, {"room": "living room", "item": "a wool rug"},
            {"room": "kitchen", "item": "pendant lights"}, {"room": "kitchen", "item": "open shelves"},
            {"room": "bedroom", "item": "a linen bedspread"}, {"room": "bedroom", "item": "wall art"},
            {"room": "bathroom", "item": "a freestanding bathtub"}, {"room": "patio", "item": "potted plants"},
            {"room": "home office", "item": "a bookshelf"}, {"room": "home office", "item": "an armchair"},
        ],
        "adj": ["scandinavian", "modern farmhouse", "cozy", "minimalist", "industrial", "mid-century"],
    },
    "food": {
        "templates": [
            "{adj} {dish} recipe",
            "easy {dish} with {ingredient}",
            "homemade {dish} on a wooden table",
            "{dish} with {ingredient} and {ingredient2}",
        ],
        "combos": [
            {"dish": "chocolate cake", "ingredient": "raspberries", "ingredient2": "whipped cream"},
            {"dish": "pasta salad", "ingredient": "fresh basil", "ingredient2": "cherry tomatoes"},
            {"dish": "banana bread", "ingredient": "walnuts", "ingredient2": "honey"},
            {"dish": "chicken curry", "ingredient": "garlic", "ingredient2": "spinach"},
            {"dish": "pancakes", "ingredient": "strawberries", "ingredient2": "maple syrup"},
            {"dish": "sourdough bread", "ingredient": "rosemary", "ingredient2": "sea salt"},
            {"dish": "tacos", "ingredient": "avocado", "ingredient2": "lime"},
        ],
        "adj": ["healthy", "vegan", "the best", "quick", "gluten-free"],
    },
    "stock": {
        "templates": [
            "{person} {action} in {place} stock photo",
            "portrait of {person} {action}",
            "{person} {action} - royalty free image",
            "{concept} concept, {person} {action}",
        ],
        "combos": [
            {"person": "businessman", "action": "working on a laptop", "place": "a modern office", "concept": "business"},
            {"person": "team of colleagues", "action": "shaking hands", "place": "a meeting room", "concept": "teamwork"},
            {"person": "young woman", "action": "holding a cup of coffee", "place": "a cafe", "concept": "lifestyle"},
            {"person": "doctor", "action": "talking to a patient", "place": "a hospital", "concept": "healthcare"},
            {"person": "senior couple", "action": "walking together", "place": "a park", "concept": "retirement"},
            {"person": "student", "action": "reading a book", "place": "a library", "concept": "education"},
            {"person": "happy family", "action": "smiling", "place": "the kitchen", "concept": "family"},
            {"person": "female doctor", "action": "holding a clipboard", "place": "a clinic", "concept": "healthcare"},
            {"person": "nurse", "action": "caring for her patient", "place": "a hospital ward", "concept": "healthcare"},
            {"person": "male nurse", "action": "checking a chart", "place": "a hospital", "concept": "healthcare"},
            {"person": "software engineer", "action": "coding on his laptop", "place": "a startup office", "concept": "technology"},
            {"person": "teacher", "action": "writing on the blackboard", "place": "a classroom", "concept": "education"},
            {"person": "pilot", "action": "standing by his plane", "place": "an airport", "concept": "travel"},
            {"person": "CEO", "action": "giving a presentation", "place": "a boardroom", "concept": "leadership"},
            {"person": "hairdresser", "action": "cutting a woman's hair", "place": "a salon", "concept": "beauty"},
            {"person": "firefighter", "action": "holding a hose", "place": "a burning building", "concept": "emergency"},
            {"person": "cashier", "action": "smiling at the counter", "place": "a supermarket", "concept": "retail"},
        ],
    },
    "travel": {
        "templates": [
            "{place} at {time}",
            "view of {place}, {country}",
            "{adj} {landscape} in {country}",
            "{time} over the {landscape} near {place}",
        ],
        "combos": [
            {"country": "Italy", "place": "the old town of Siena", "landscape": "hills"},
            {"country": "Norway", "place": "the harbour in Bergen", "landscape": "fjord"},
            {"country": "Japan", "place": "a temple in Kyoto", "landscape": "mountains"},
            {"country": "Peru", "place": "the mountain village", "landscape": "valley"},
            {"country": "Iceland", "place": "the lighthouse", "landscape": "waterfall"},
            {"country": "Morocco", "place": "the medina of Fes", "landscape": "desert"},
            {"country": "Scotland", "place": "the castle", "landscape": "lake"},
        ],
        "time": ["sunrise", "sunset", "night", "dawn"],
        "adj": ["beautiful", "misty", "snowy", "sunny"],
    },
    "art": {
        "templates": [
            "{subject}, {medium} by {artist}",
            "{adj} {subject} {medium}",
            "{subject} art print by {artist}",
            "{medium} of {subject}",
            "{adj} {subject}, trending on artstation",
        ],
        "subject": ["portrait of a woman", "still life with flowers", "landscape with river", "city at night", "abstract composition", "fantasy castle", "sleeping cat"],
        "medium": ["oil painting", "watercolor", "digital art", "charcoal drawing", "poster", "canvas print"],
        "adj": ["surreal", "impressionist", "colorful", "dark", "minimalist", "detailed"],
        "artist": [
            "Claude Monet", "Vincent van Gogh", "Alphonse Mucha", "Greg Rutkowski", "Katsushika Hokusai",
            "Gustav Klimt", "Frida Kahlo", "Salvador Dali", "Rembrandt", "Johannes Vermeer",
            "Edward Hopper", "Wassily Kandinsky", "Thomas Kinkade", "Banksy", "Andy Warhol",
        ],
    },
    "product": {
        "templates": [
            "{item} {variant}",
            "personalized {item} - {variant}",
            "{brand} {item}, {variant}",
            "funny {item} gift",
        ],
        "combos": [
            {"item": "coffee mug", "variant": "11 oz"}, {"item": "coffee mug", "variant": "custom name"},
            {"item": "t-shirt", "variant": "black, large"}, {"item": "t-shirt", "variant": "white, unisex"},
            {"item": "phone case", "variant": "for iPhone 12"}, {"item": "tote bag", "variant": "natural cotton"},
            {"item": "throw pillow", "variant": "18 x 18 inch"}, {"item": "sticker", "variant": "pack of 3"},
            {"item": "water bottle", "variant": "stainless steel"},
        ],
    },
    "book": {
        "templates": [
            "{title} (paperback)",
            "{title}: a novel",
            "{title} hardcover – {year}",
        ],
        "title": ["The Silent Garden", "A History of Light", "Cooking for Two", "Learning Python", "The Last Harbour", "Birds of North America"],
    },
    "car": {
        "templates": [
            "{year} {make} {model} {colour}",
            "used {make} {model} for sale",
            "{colour} {make} {model} on the road",
        ],
        "combos": [
            {"make": "Ford", "model": "Mustang"}, {"make": "Ford", "model": "Focus"},
            {"make": "Toyota", "model": "Corolla"}, {"make": "Toyota", "model": "RAV4"},
            {"make": "BMW", "model": "3 Series"}, {"make": "Volkswagen", "model": "Golf"},
            {"make": "Porsche", "model": "911"}, {"make": "Honda", "model": "Civic"},
        ],
    },
    "pet": {
        "templates": [
            "{adj} {animal} {action}",
            "{young} {action} in the grass",
            "portrait of a {adj} {animal}",
        ],
        "combos": [
            {"animal": "golden retriever", "young": "golden retriever puppy"},
            {"animal": "border collie", "young": "border collie puppy"},
            {"animal": "french bulldog", "young": "french bulldog puppy"},
            {"animal": "tabby cat", "young": "tabby kitten"},
            {"animal": "siamese cat", "young": "siamese kitten"},
            {"animal": "rabbit", "young": "baby rabbit"},
        ],
        "adj": ["cute", "sleepy", "happy", "fluffy"],
        "action": ["playing", "sleeping", "running", "looking at the camera"],
    },
    "sport": {
        "templates": [
            "{team} {player} during the {event}",
            "{sport} player in action at the {event}",
            "fans cheering at the {event}",
        ],
        "combos": [
            {"sport": "football", "player": "striker", "event": "cup final"},
            {"sport": "football", "player": "goalkeeper", "event": "season opener"},
            {"sport": "American football", "player": "quarterback", "event": "championship game"},
            {"sport": "baseball", "player": "pitcher", "event": "season opener"},
            {"sport": "tennis", "player": "top seed", "event": "open"},
        ],
        "team": ["home team", "visiting team", "national team"],
    },
    "wedding": {
        "templates": [
            "{adj} wedding {item}",
            "bride and groom {action} at the {venue}",
            "{colour} wedding {item} ideas",
        ],
        "item": ["invitation", "cake", "bouquet", "dress", "table decor"],
        "adj": ["rustic", "elegant", "boho", "vintage", "romantic"],
        "action": ["dancing", "kissing", "walking", "laughing"],
        "venue": ["beach", "barn", "garden", "chapel"],
    },
}
#: Keywords a site of each topic stuffs into long alt text.
TAGS = {
    "fashion": ["women's fashion", "outfit ideas", "summer style", "clothing", "new arrivals", "free shipping"],
    "jewelry": ["jewelry", "handmade jewelry", "gift for her", "anniversary gift", "wedding jewelry"],
    "home": ["home decor", "interior design", "decorating ideas", "house and home", "living"],
    "food": ["recipe", "easy recipes", "dinner ideas", "baking", "healthy food", "food photography"],
    "stock": ["stock photo", "royalty free", "people", "lifestyle", "adult", "indoors", "horizontal"],
    "travel": ["travel", "landscape", "nature", "tourism", "holiday destination", "scenic"],
    "art": ["wall art", "art print", "home decor", "painting", "fine art", "gift idea"],
    "product": ["gift", "custom gift", "birthday gift", "personalized", "made to order"],
    "book": ["book", "paperback", "new release", "bestseller", "reading"],
    "car": ["car", "automobile", "vehicle", "for sale", "used cars", "dealer"],
    "pet": ["pets", "animals", "cute animals", "pet photography", "animal lover"],
    "sport": ["sports", "sport photography", "stadium", "match", "action"],
    "wedding": ["wedding", "wedding ideas", "bride", "wedding inspiration", "bridal"],
}
SHARED = {
    "colour": ["black", "white", "red", "navy blue", "sage green", "pink", "beige", "mustard yellow"],
    "brand": ["Nordic", "Aurora", "Maple & Co", "Urban", "Lumen"],
    "size": ["S", "M", "L", "XL", "10", "12"],
    "year": ["2015", "2018", "2019", "2020", "2021"],
}
TAILS = [
    "", "", "", "", "", " - Stock Photo", " | Free Shipping", " – Buy Online",
    ", high resolution", " #inspiration #ideas", " on Sale Now", " - Image 3 of 12",
]
HTML_NOISE = [
    "<b>{c}</b>", "{c}<br />", "{c} &amp; more", "<span class=\"title\">{c}</span>", "{c} <i>new</i>",
]
AESTHETIC_BUCKETS = [0.12, 1.18, 6.81, 18.88, 30.24, 27.72, 12.50, 2.37, 0.16, 0.003]


def _slug(text: str) -> str:
    return "-".join("".join(ch if ch.isalnum() else " " for ch in text.lower()).split())[:60]


def _tail_host(i: int) -> str:
    """A small site of the long tail, always under the reserved ``.example`` top-level domain."""
    words = ["studio", "shop", "photo", "art", "home", "blog", "news", "design", "craft", "garden", "travel", "kitchen"]
    a, b = words[i % len(words)], words[(i * 7 + 3) % len(words)]
    prefix = ["", "www.", "img.", "cdn.", "images."][(i * 3) % 5]
    return f"{prefix}{a}{b}{i}{DEMO_TLD}"


def _caption(rng: np.random.Generator, topic: str) -> str:
    spec = TOPICS[topic]
    template = spec["templates"][rng.integers(len(spec["templates"]))]
    combos = spec.get("combos")
    values = dict(combos[rng.integers(len(combos))]) if combos else {}
    for key in sorted({part.split("}")[0] for part in template.split("{")[1:]}):
        if key not in values:
            options = spec.get(key) or SHARED[key]
            values[key] = options[rng.integers(len(options))]
    text = template.format(**values)
    if rng.random() < 0.55:
        text = text[0].upper() + text[1:]
    text += TAILS[rng.integers(len(TAILS))]
    if rng.random() < 0.22:  # long, SEO-style alt text: the words again, then the site's keywords
        tags = TAGS[topic]
        text += " | " + ", ".join(dict.fromkeys(list(values.values()) + tags[: 3 + int(rng.integers(len(tags) - 2))]))
    if rng.random() < 0.012:
        text = HTML_NOISE[rng.integers(len(HTML_NOISE))].format(c=text)
    return text


def demo_table(rows: int, seed: int, offset: int = 0):
    """One shard's worth of rows as a pyarrow Table."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng([seed, offset])
    weights = np.array([w for _, w, _ in HOSTS] + [TAIL_WEIGHT], dtype=float)
    weights /= weights.sum()
    topics = list(TOPICS)
    host_pick = rng.choice(len(weights), size=rows, p=weights)
    # A skewed long tail: a few small sites have hundreds of images, most have a handful.
    tail_pick = np.minimum((TAIL_SITES * rng.random(rows) ** 2).astype(int), TAIL_SITES - 1)
    urls, captions = [], []
    for i in range(rows):
        h = host_pick[i]
        if h < len(HOSTS):
            host, _, host_topics = HOSTS[h]
            topic = host_topics[rng.integers(len(host_topics))]
        else:
            t = int(tail_pick[i])
            host, topic = _tail_host(t), topics[(t * 5) % len(topics)]
        caption = _caption(rng, topic)
        scheme = "https" if rng.random() < 0.85 else "http"
        urls.append(f"{scheme}://{host}/images/{offset + i:07d}/{_slug(caption) or 'image'}.jpg")
        captions.append(caption)
    similarity = 0.28 + rng.gamma(2.2, 0.018, size=rows)
    punsafe = np.where(rng.random(rows) < 0.029, rng.uniform(0.5, 0.999, rows), rng.beta(0.6, 14.0, rows) * 0.5)
    pwatermark = np.where(rng.random(rows) < 0.061, rng.uniform(0.8, 1.0, rows), rng.beta(0.8, 6.0, rows) * 0.8)
    buckets = np.array(AESTHETIC_BUCKETS) / sum(AESTHETIC_BUCKETS)
    aesthetic = rng.choice(10, size=rows, p=buckets) + rng.random(rows)
    short_side = np.exp(rng.normal(5.669, 0.706, rows))
    ratio = np.exp(rng.normal(0.15, 0.3, rows))
    landscape = rng.random(rows) < 0.6
    width = np.where(landscape, short_side * ratio, short_side)
    height = np.where(landscape, short_side, short_side * ratio)
    width = np.clip(np.round(width), 16, 12000)
    height = np.clip(np.round(height), 16, 12000)
    # A few missing scores, as real joined metadata has.
    pwatermark[rng.random(rows) < 0.002] = np.nan
    aesthetic[rng.random(rows) < 0.001] = np.nan
    hashes = [
        int.from_bytes(hashlib.blake2b((u + c).encode(), digest_size=8).digest(), "little", signed=True)
        for u, c in zip(urls, captions)
    ]
    return pa.table(
        {
            "URL": pa.array(urls, pa.string()),
            "TEXT": pa.array(captions, pa.string()),
            "WIDTH": pa.array(width, pa.float64()),
            "HEIGHT": pa.array(height, pa.float64()),
            "similarity": pa.array(np.round(similarity, 6), pa.float64()),
            "hash": pa.array(hashes, pa.int64()),
            "punsafe": pa.array(punsafe.astype(np.float32), pa.float32()),
            "pwatermark": pa.array(pwatermark.astype(np.float32), pa.float32()),
            "aesthetic": pa.array(aesthetic.astype(np.float32), pa.float32()),
        }
    )


def write_demo_shards(folder: Path, rows: int = DEFAULT_ROWS, shards: int = DEFAULT_SHARDS, seed: int = 0) -> list[Path]:
    """Write ``shards`` parquet files named like laion2B-en's parts; same arguments, same bytes."""
    import pyarrow.parquet as pq

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    per = -(-rows // shards)
    paths = []
    for k in range(shards):
        n = min(per, rows - k * per)
        table = demo_table(n, seed, offset=k * per)
        path = folder / f"part-{k:05d}-demo.snappy.parquet"
        pq.write_table(table, path, compression="snappy", row_group_size=10_000)
        paths.append(path)
    return paths
