"""MediaPipe face mesh (face_landmark.tflite) rebuilt in torch, with its weights read from the .tflite.

The network: a 3x3 stride-2 stem, then residual blocks of (depthwise 3x3 -> 1x1 conv) added to the
input (max-pooled and zero-padded in channels when the block downsamples), each followed by PReLU;
at 6x6 it splits into the 468x3 landmark head and the face-presence head. TFLite's SAME padding on a
stride-2 layer pads only at the bottom/right, so stride-2 layers pad explicitly.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

INPUT_SIZE = 192
N_MESH = 468


def _same_pad(x: torch.Tensor, k: int, stride: int) -> torch.Tensor:
    """TFLite SAME padding (extra pixel at the end) for an even input and stride 2."""
    if stride == 1:
        return F.pad(x, (k // 2, k // 2, k // 2, k // 2))
    total = max(k - stride, 0)
    return F.pad(x, (total // 2, total - total // 2, total // 2, total - total // 2))


class Block(nn.Module):
    """PReLU(dw3x3 -> conv1x1 (x) + shortcut(x)); the shortcut max-pools and channel-pads on stride 2."""

    def __init__(self, cin: int, cout: int, stride: int, names: tuple[str, str, str]):
        super().__init__()
        self.stride, self.cin, self.cout = stride, cin, cout
        self.dw = nn.Conv2d(cin, cin, 3, stride, 0, groups=cin)
        self.pw = nn.Conv2d(cin, cout, 1)
        self.act = nn.PReLU(cout)
        self.tfl_names = names  # tflite tensor names: depthwise, conv, prelu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pw(self.dw(_same_pad(x, 3, self.stride)))
        s = x
        if self.stride == 2:
            s = F.max_pool2d(s, 2, 2)
        if self.cout > self.cin:
            s = F.pad(s, (0, 0, 0, 0, 0, self.cout - self.cin))
        return self.act(y + s)


class ConvPReLU(nn.Module):
    """1x1 conv then PReLU (the heads' channel reduction)."""

    def __init__(self, cin: int, cout: int, names: tuple[str, str]):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1)
        self.act = nn.PReLU(cout)
        self.tfl_names = names

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


def _blocks(spec: list[tuple[int, int, int, int]]) -> list[Block]:
    """Blocks from (cin, cout, stride, tflite layer number) rows."""
    return [
        Block(ci, co, s, (f"depthwise_conv2d_{n - 1}", f"conv2d_{n}", f"p_re_lu_{n}"))
        for ci, co, s, n in spec
    ]


class FaceMesh(nn.Module):
    """NCHW float32 in [0, 1] at 192x192 -> (landmarks (N, 1404) in crop pixels, face logit (N, 1))."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, 2, 0)
        self.stem_act = nn.PReLU(16)
        trunk = [(16, 16, 1, 2), (16, 16, 1, 3), (16, 32, 2, 4), (32, 32, 1, 5), (32, 32, 1, 6)]
        trunk += [(32, 64, 2, 7), (64, 64, 1, 8), (64, 64, 1, 9), (64, 128, 2, 10), (128, 128, 1, 11)]
        trunk += [(128, 128, 1, 12), (128, 128, 2, 13), (128, 128, 1, 14), (128, 128, 1, 15)]
        self.trunk = nn.Sequential(*_blocks(trunk))
        self.mesh_head = nn.Sequential(
            *_blocks([(128, 128, 2, 16), (128, 128, 1, 17), (128, 128, 1, 18)]),
            ConvPReLU(128, 32, ("conv2d_19", "p_re_lu_19")),
            Block(32, 32, 1, ("depthwise_conv2d_18", "conv2d_20", "p_re_lu_20")),
        )
        self.mesh_out = nn.Conv2d(32, N_MESH * 3, 3)
        # The face-presence branch's tflite layers are numbered apart from its block structure.
        score_block = Block(128, 128, 2, ("depthwise_conv2d_23", "conv2d_28", "p_re_lu_26"))
        score_block2 = Block(32, 32, 1, ("depthwise_conv2d_24", "conv2d_30", "p_re_lu_28"))
        self.score_head = nn.Sequential(
            score_block, ConvPReLU(128, 32, ("conv2d_29", "p_re_lu_27")), score_block2
        )
        self.score_out = nn.Conv2d(32, 1, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.stem_act(self.stem(_same_pad(x, 3, 2)))
        x = self.trunk(x)
        mesh = self.mesh_out(self.mesh_head(x)).flatten(1)
        score = self.score_out(self.score_head(x)).flatten(1)
        return mesh, score


def read_tflite_tensors(path: str) -> dict[str, np.ndarray]:
    """Every constant tensor of a .tflite file by name, as float32 (fp16 weights widened)."""
    import tflite

    buf = open(path, "rb").read()
    model = tflite.Model.GetRootAsModel(buf, 0)
    graph = model.Subgraphs(0)
    dtypes = {tflite.TensorType.FLOAT32: np.float32, tflite.TensorType.FLOAT16: np.float16}
    out = {}
    for i in range(graph.TensorsLength()):
        t = graph.Tensors(i)
        data = model.Buffers(t.Buffer()).DataAsNumpy()
        if t.Type() not in dtypes or not isinstance(data, np.ndarray) or data.size == 0:
            continue
        arr = np.frombuffer(data.tobytes(), dtype=dtypes[t.Type()]).reshape(t.ShapeAsNumpy())
        out[t.Name().decode()] = arr.astype(np.float32)
    return out


def _set(param: torch.Tensor, value: np.ndarray) -> None:
    if tuple(param.shape) != value.shape:
        raise ValueError(f"shape mismatch: {tuple(param.shape)} vs {value.shape}")
    with torch.no_grad():
        param.copy_(torch.from_numpy(np.ascontiguousarray(value)))


def load_tflite_weights(net: FaceMesh, path: str) -> FaceMesh:
    """Copy the .tflite's weights into net (OHWI -> OIHW; depthwise 1HWC -> C1HW); every one must be used."""
    t = read_tflite_tensors(path)
    used = set()

    def conv(mod: nn.Conv2d, name: str, depthwise: bool = False) -> None:
        k = t[f"{name}/Kernel"]
        _set(mod.weight, k.transpose(3, 0, 1, 2) if depthwise else k.transpose(0, 3, 1, 2))
        _set(mod.bias, t[f"{name}/Bias"])
        used.update({f"{name}/Kernel", f"{name}/Bias"})

    def prelu(mod: nn.PReLU, name: str) -> None:
        _set(mod.weight, t[f"{name}/Alpha"].reshape(-1))
        used.add(f"{name}/Alpha")

    conv(net.stem, "conv2d_1")
    prelu(net.stem_act, "p_re_lu_1")
    for mod in net.modules():
        if isinstance(mod, Block):
            conv(mod.dw, mod.tfl_names[0], depthwise=True)
            conv(mod.pw, mod.tfl_names[1])
            prelu(mod.act, mod.tfl_names[2])
        elif isinstance(mod, ConvPReLU):
            conv(mod.conv, mod.tfl_names[0])
            prelu(mod.act, mod.tfl_names[1])
    conv(net.mesh_out, "conv2d_21")
    conv(net.score_out, "conv2d_31")
    unused = {k for k in t if k.split("/")[-1] in ("Kernel", "Bias", "Alpha")} - used
    if unused:
        raise ValueError(f"tflite weights not loaded: {sorted(unused)}")
    return net.eval()


def load_onnx_weights(net: FaceMesh, path: str) -> FaceMesh:
    """Copy the weights of an exported facemesh.onnx back into net (for parity tests without the .tflite).

    The exporter merges identical initializers (named through Identity nodes) and folds the PReLU slopes
    to (C, 1, 1) under generated names: onnx_export.onnx_state_dict matches both back."""
    import onnx

    from .onnx_export import onnx_state_dict

    net.load_state_dict(onnx_state_dict(onnx.load(path), net.state_dict(), path))
    return net.eval()
