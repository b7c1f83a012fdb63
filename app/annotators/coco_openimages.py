"""COCO's 80 detection classes (NanoDet's class channels, in order) as Open Images classes (MIDs).

Provenance: each MID and display name is copied from Open Images' own class list,
`class-descriptions-boxable.csv` (the 601 boxable classes of Open Images v4 to v7, CC BY 4.0 by
Google; shipped as app/data/openimages-classes-boxable.csv, which tests/test_nanodet.py checks this
table against). The COCO name is matched to the Open Images class that names the same thing;
where Open Images has no class of exactly that scope the nearest one is taken and the comment says so.
Every COCO class has a counterpart, so DROPPED is empty; a COCO class listed there would be left out
of bulk runs (its boxes never written) because no Open Images label could name it.
"""

# COCO's 80 class names in NanoDet's (and COCO's category id) order; index = the net's class channel.
COCO_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip

# COCO name: (Open Images MID, Open Images display name)
COCO_TO_OPENIMAGES: dict[str, tuple[str, str]] = {
    "person": ("/m/01g317", "Person"),
    "bicycle": ("/m/0199g", "Bicycle"),
    "car": ("/m/0k4j", "Car"),
    "motorcycle": ("/m/04_sv", "Motorcycle"),
    "airplane": ("/m/0cmf2", "Airplane"),
    "bus": ("/m/01bjv", "Bus"),
    "train": ("/m/07jdr", "Train"),
    "truck": ("/m/07r04", "Truck"),
    "boat": ("/m/019jd", "Boat"),
    "traffic light": ("/m/015qff", "Traffic light"),
    "fire hydrant": ("/m/01pns0", "Fire hydrant"),
    "stop sign": ("/m/02pv19", "Stop sign"),
    "parking meter": ("/m/015qbp", "Parking meter"),
    "bench": ("/m/0cvnqh", "Bench"),
    "bird": ("/m/015p6", "Bird"),
    "cat": ("/m/01yrx", "Cat"),
    "dog": ("/m/0bt9lr", "Dog"),
    "horse": ("/m/03k3r", "Horse"),
    "sheep": ("/m/07bgp", "Sheep"),
    "cow": ("/m/01xq0k1", "Cattle"),  # COCO's cows are cattle of any sex
    "elephant": ("/m/0bwd_0j", "Elephant"),
    "bear": ("/m/01dws", "Bear"),
    "zebra": ("/m/0898b", "Zebra"),
    "giraffe": ("/m/03bk1", "Giraffe"),
    "backpack": ("/m/01940j", "Backpack"),
    "umbrella": ("/m/0hnnb", "Umbrella"),
    "handbag": ("/m/080hkjn", "Handbag"),
    "tie": ("/m/01rkbr", "Tie"),
    "suitcase": ("/m/01s55n", "Suitcase"),
    "frisbee": ("/m/02wmf", "Flying disc"),
    "skis": ("/m/071p9", "Ski"),
    "snowboard": ("/m/06__v", "Snowboard"),
    "sports ball": ("/m/018xm", "Ball"),  # Open Images' Ball is any ball; its Football etc. are subclasses
    "kite": ("/m/02zt3", "Kite"),
    "baseball bat": ("/m/03g8mr", "Baseball bat"),
    "baseball glove": ("/m/03grzl", "Baseball glove"),
    "skateboard": ("/m/06_fw", "Skateboard"),
    "surfboard": ("/m/019w40", "Surfboard"),
    "tennis racket": ("/m/0h8my_4", "Tennis racket"),
    "bottle": ("/m/04dr76w", "Bottle"),
    "wine glass": ("/m/09tvcd", "Wine glass"),
    # Open Images has no plain "Cup": Coffee cup is the nearest (its Mug is the other candidate).
    "cup": ("/m/02p5f1q", "Coffee cup"),
    "fork": ("/m/0dt3t", "Fork"),
    "knife": ("/m/04ctx", "Knife"),
    "spoon": ("/m/0cmx8", "Spoon"),
    "bowl": ("/m/04kkgm", "Bowl"),
    "banana": ("/m/09qck", "Banana"),
    "apple": ("/m/014j1m", "Apple"),
    "sandwich": ("/m/0l515", "Sandwich"),
    "orange": ("/m/0cyhj_", "Orange"),
    "broccoli": ("/m/0hkxq", "Broccoli"),
    "carrot": ("/m/0fj52s", "Carrot"),
    "hot dog": ("/m/01b9xk", "Hot dog"),
    "pizza": ("/m/0663v", "Pizza"),
    "donut": ("/m/0jy4k", "Doughnut"),
    "cake": ("/m/0fszt", "Cake"),
    "chair": ("/m/01mzpv", "Chair"),
    "couch": ("/m/02crq1", "Couch"),
    "potted plant": ("/m/03fp41", "Houseplant"),
    "bed": ("/m/03ssj5", "Bed"),
    # COCO's dining tables are any table set for a meal; Open Images' Table is the class that holds
    # them (its "Kitchen & dining room table" is narrower).
    "dining table": ("/m/04bcr3", "Table"),
    "toilet": ("/m/09g1w", "Toilet"),
    "tv": ("/m/07c52", "Television"),
    "laptop": ("/m/01c648", "Laptop"),
    "mouse": ("/m/020lf", "Computer mouse"),
    "remote": ("/m/0qjjc", "Remote control"),
    "keyboard": ("/m/01m2v", "Computer keyboard"),
    "cell phone": ("/m/050k8", "Mobile phone"),
    "microwave": ("/m/0fx9l", "Microwave oven"),
    "oven": ("/m/029bxz", "Oven"),
    "toaster": ("/m/01k6s3", "Toaster"),
    "sink": ("/m/0130jx", "Sink"),
    "refrigerator": ("/m/040b_t", "Refrigerator"),
    "book": ("/m/0bt_c3", "Book"),
    "clock": ("/m/01x3z", "Clock"),
    "vase": ("/m/02s195", "Vase"),
    "scissors": ("/m/01lsmm", "Scissors"),
    "teddy bear": ("/m/0kmg4", "Teddy bear"),
    "hair drier": ("/m/03wvsk", "Hair dryer"),
    "toothbrush": ("/m/012xff", "Toothbrush"),
}

# COCO name: why it has no Open Images class (none today; see the module docstring).
DROPPED: dict[str, str] = {}

# The net's class channel -> MID (None for a dropped class), and MID -> channel.
CHANNEL_MIDS: tuple[str | None, ...] = tuple(
    COCO_TO_OPENIMAGES[name][0] if name in COCO_TO_OPENIMAGES else None for name in COCO_CLASSES
)
MID_CHANNELS: dict[str, int] = {mid: k for k, mid in enumerate(CHANNEL_MIDS) if mid is not None}
MID_NAMES: dict[str, str] = dict(COCO_TO_OPENIMAGES.values())
