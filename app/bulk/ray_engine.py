"""The Ray engine of `flask oiap bulk-annotate --engine ray`: the same selection, models and output as
the local engine (app/bulk/local.py), with the annotating done by Ray Data actors on a cluster.

- The driver (this process) selects images exactly as the local engine does, in id order, and
  resolves each row's file through app.images.layout (so every node must see the image folders at the
  same paths: NFS, or the same disks), or names it in S3 (`s3_images`, read by the actors with boto3).
- Ray Data maps batches of rows over an actor pool (map_batches with a callable class): each actor
  loads the run's models once (one onnxruntime session set, files verified by sha256) and runs the
  same Chain as the local engine on them.
- Results stream back to the driver in order (preserve_order) and are written by bulk.write_batch,
  the local engine's own write: annotations, run_errors and the run's cursor in one transaction per
  batch. A run is therefore resumable, by either engine, with no image done twice or missed.

The selection is fed to Ray in chunks (a dataset each, `chunk` images), so the driver never holds
the whole selection and a resumed run starts from its cursor.
"""

import json
import tempfile
from collections.abc import Iterator
from time import perf_counter

import numpy as np

from ..errors import InvalidInput, NotFound
from ..images.decode import BadImage, decode
from ..paths import REPO_ROOT
from .chain import Chain, ChainSpec, Timer

DEFAULT_CHUNK = 20000


def _plain(value):
    """numpy and tuples to JSON-able lists/floats (results cross the process boundary as JSON)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.floating | np.integer):
        return value.item()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def plain_result(result: dict) -> dict:
    """A Chain result without its pixel-space working fields, ready for bulk._write."""
    if "error" in result:
        return {"image_id": result["image_id"], "error": result["error"]}
    faces = [
        {k: _plain(v) for k, v in f.items() if not k.endswith("_px") and v is not None}
        for f in result["faces"]
    ]
    return {"image_id": result["image_id"], "faces": faces}


class RemoteChain(Chain):
    """A Chain whose rows carry their source already resolved by the driver: `file` (a path or an
    s3:// URI) or `error` (why the driver found no file)."""

    s3 = None

    def _decode(self, row: dict):
        t0 = perf_counter()
        try:
            if row.get("error"):
                return BadImage(row["error"])
            if row["file"].startswith("s3://"):
                return self._decode_s3(row["file"], row.get("rotation"))
            return decode(row["file"], self.max_side, row.get("rotation"))
        except BadImage as e:
            return e
        finally:
            self.timer.add("decode", perf_counter() - t0)

    def _decode_s3(self, uri: str, rotation: float | None = None):
        import boto3
        from botocore.exceptions import ClientError

        if self.s3 is None:
            self.s3 = boto3.client("s3", endpoint_url=self.config.get("S3_ENDPOINT_URL") or None)
        bucket, _, key = uri[len("s3://") :].partition("/")
        try:
            body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as e:
            raise BadImage(f"missing: {uri}: {e.response.get('Error', {}).get('Code', e)}") from None
        # decode() applies the same policy to every file (modes, bombs, truncation): give it one.
        with tempfile.NamedTemporaryFile(suffix=".jpg") as f:
            f.write(body)
            f.flush()
            return decode(f.name, self.max_side, rotation)


class AnnotateBatch:
    """Ray Data callable class: one per actor, holding the run's annotators (one session set)."""

    def __init__(self, spec: ChainSpec, threads: int, config: dict):
        self.chain = spec.chain(config, threads, RemoteChain)

    def __call__(self, batch: dict) -> dict:
        import ray

        rows = [json.loads(r) for r in batch["row"]]
        results = self.chain.run(rows)
        # The node that did each row, so a run can say where its work went (profile()["nodes"]).
        node = ray.get_runtime_context().get_node_id()
        return {
            "pos": batch["pos"],
            "result": [json.dumps(plain_result(r)) for r in results],
            "node": [node] * len(results),
        }


def check_address(address: str | None) -> None:
    """Refuse a ray:// address: Ray Client (ray[client], grpcio) is not installed or tested here, and
    a driver on a node of the cluster does the same work, writing to the store beside it."""
    if address is not None and address.startswith("ray://"):
        raise InvalidInput(
            f"--address {address}: ray:// (Ray Client) addresses are not supported; run bulk-annotate "
            "on a node of the cluster with --address auto (or HEAD_IP:6379, the head's GCS port)"
        )


class RayEngine:
    """Batches annotated by Ray Data actors, yielded to bulk_annotate in selection order.

    address: None starts a local Ray instance (num_cpus cores, all by default); "auto" or HEAD:PORT
    (the head's GCS) joins an existing cluster from one of its nodes; ray:// is refused. workers: actors; actor_cpus: CPUs each reserves
    (and onnxruntime threads it uses, at least 1); chunk: images per Ray dataset.
    """

    def __init__(
        self,
        spec: ChainSpec,
        config,
        *,
        workers: int = 2,
        progress: bool = True,
        address: str | None = None,
        num_cpus: int | None = None,
        actor_cpus: float = 1.0,
        batch: int | None = None,
        chunk: int = DEFAULT_CHUNK,
        s3_images: str | None = None,
    ):
        if actor_cpus <= 0 or chunk < 1:
            raise InvalidInput("--actor-cpus must be > 0 and --chunk at least 1")
        check_address(address)
        if s3_images is not None and not s3_images.startswith("s3://"):
            raise InvalidInput(f"--s3-images {s3_images!r}: give s3://bucket[/prefix]")
        self.spec = spec
        self.config = config
        self.workers = workers
        self.progress = progress
        self.address = address
        self.num_cpus = num_cpus
        self.actor_cpus = actor_cpus
        self.batch = batch
        self.chunk = chunk
        self.s3_images = s3_images.rstrip("/") if s3_images else None
        self.timer = Timer()
        self.nodes: dict[str, int] = {}
        # What the actors need of the config: S3 access; image files come resolved by the driver.
        self.actor_config = {"S3_ENDPOINT_URL": config.get("S3_ENDPOINT_URL")}

    def _init(self) -> bool:
        """Start or join Ray unless this process already did; True when we must shut it down."""
        import ray

        if ray.is_initialized():
            return False
        t0 = perf_counter()
        kwargs = {
            "include_dashboard": False,
            "log_to_driver": self.progress,
            "configure_logging": self.progress,
            # Workers import app.* from this checkout: the same path on every node (see README).
            "runtime_env": {"env_vars": {"PYTHONPATH": str(REPO_ROOT)}},
        }
        if self.address is None:
            kwargs["num_cpus"] = self.num_cpus
        ray.init(address=self.address, **kwargs)
        self.timer.add("ray_init", perf_counter() - t0)
        return True

    def _source(self, row: dict) -> dict:
        """The row with its file resolved here, on the driver (or the reason there is none)."""
        from ..images.layout import image_path

        out = dict(row)
        if self.s3_images and not row.get("path"):
            out["file"] = f"{self.s3_images}/{row['split']}/{row['id']}.jpg"
            return out
        try:
            out["file"] = str(image_path(self.config, row))
        except (NotFound, InvalidInput) as e:
            out["error"] = f"missing: {e}"
        return out

    def _dataset(self, rows: list[dict]):
        import ray

        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True
        ctx.enable_progress_bars = self.progress
        items = [{"pos": k, "row": json.dumps(self._source(r))} for k, r in enumerate(rows)]
        return ray.data.from_items(items).map_batches(
            AnnotateBatch,
            fn_constructor_args=(self.spec, max(1, int(self.actor_cpus)), self.actor_config),
            batch_size=self.batch or 8,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=self.workers),
            num_cpus=self.actor_cpus,
        )

    def results(self, batches: Iterator[list]) -> Iterator[tuple[list, list]]:
        """(rows, results) per batch, in selection order; closing the generator stops Ray's work."""
        import ray

        started = self._init()
        try:
            while True:
                chunk, n = [], 0
                for b in batches:
                    chunk.append(b)
                    n += len(b)
                    if n >= self.chunk:
                        break
                if not chunk:
                    return
                if self.batch is None:
                    self.batch = len(chunk[0])
                rows = [r for b in chunk for r in b]
                it = iter(self._dataset(rows).iter_rows())
                try:
                    pos = 0
                    for b in chunk:
                        t0 = perf_counter()
                        out = []
                        for _ in b:
                            r = next(it)
                            if r["pos"] != pos:  # preserve_order is what the cursor relies on
                                raise RuntimeError(f"Ray returned row {r['pos']} where {pos} was due")
                            out.append(json.loads(r["result"]))
                            self.nodes[r["node"]] = self.nodes.get(r["node"], 0) + 1
                            pos += 1
                        self.timer.add("wait", perf_counter() - t0)
                        yield b, out
                    for r in it:
                        raise RuntimeError(f"Ray returned row {r['pos']} beyond the {pos} sent")
                finally:
                    # Ended here, while Ray is up: an iterator left suspended is finalised by the
                    # garbage collector after ray.shutdown(), and Ray Data's cleanup then prints
                    # "Ray is not initialized" with a traceback.
                    close = getattr(it, "close", None)
                    if close is not None:
                        close()
        finally:
            if started:
                ray.shutdown()

    def profile(self) -> dict:
        """Seconds on the driver: Ray start, waiting for results, writing."""
        return {k: round(v, 3) for k, v in self.timer.items()} | {
            "ray_workers": self.workers,
            "nodes": dict(self.nodes),  # images done per Ray node id
        }
