# Copy to instance/config.py (never committed) and edit. OIAP_* environment variables override these.

# Open Images: one folder holding train_<c>/ or train/, validation/, test/ as CVDF's archives unpack ...
# OPEN_IMAGES_DIR = "/data/open-images"
# ... or a folder per first hex character of the ImageID, plus "validation" and "test".
# OPEN_IMAGES_DIR_MAP = {"0": "/disk1/train_0", "1": "/disk1/train_1", "validation": "/disk2/validation", "test": "/disk2/test"}

# How long (seconds) an item shown to a reviewer stays claimed by them.
# CLAIM_SECONDS = 300

# Behind HTTPS, send the session cookie only over HTTPS.
# SESSION_COOKIE_SECURE = True

# Sharing models and annotation sets through S3 (credentials the usual boto3 way).
# S3_BUCKET = "my-team-bucket"
# S3_PREFIX = "oiap"
# S3_ENDPOINT_URL = "http://minio.lan:9000"
