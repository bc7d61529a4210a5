"""ETTh1's oil temperature with a covariate honestly known ahead: `holiday`, 1 on China's public holidays and
their days off (the `holidays` package's calendar; the transformers are in China), else 0. It is the data of the
committed model with a future covariate, `etth1-gru-holiday`, whose requests send the flag for the horizon
(`future_covariates` in /forecast, `X_df` in the nixtla client).

  python -m training.holiday_data      writes build/etth1-holiday.csv (make models runs it first)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import holidays
import numpy as np
import pandas as pd

from training.data import data_dir

OUT = Path("build") / "etth1-holiday.csv"


def holiday_flags(stamps: pd.DatetimeIndex, country: str = "CN") -> np.ndarray:
    """1.0 for every timestamp on a public holiday of `country`, else 0.0."""
    calendar = holidays.country_holidays(country, years=sorted(set(stamps.year)))
    return np.asarray([1.0 if day in calendar else 0.0 for day in stamps.date])


def write(out: Path = OUT, root: Path | None = None) -> Path:
    frame = pd.read_csv((root or data_dir()) / "ett" / "ETTh1.csv", parse_dates=["date"])
    stamps = pd.DatetimeIndex(frame["date"])
    table = pd.DataFrame({"unique_id": "OT", "ds": stamps, "y": frame["OT"], "holiday": holiday_flags(stamps)})
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=OUT)
    path = write(parser.parse_args().out)
    print(f"-> {path}")


if __name__ == "__main__":
    main()
