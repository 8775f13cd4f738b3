"""AAVSO VSP charts into comparison-star sequences: VSP's JSON (as its API writes it), its photometry
table as CSV, the observer's own stars, bad input named, and fetching with its cache against a local
HTTP server (never the network)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from obsy_imaging.photometry.differential import Star
from obsy_imaging.photometry.vsp import (
    ChartError,
    band_of,
    chart_sequence,
    load_chart,
    own_sequence,
    parse_chart_json,
    read_chart,
)

#: A chart as VSP's API answers (format=json): a southern field, labels as numbers and strings, a null
#: error, a band listed without a value, north without a sign.
GOLDEN = {
    "chartid": "X12345ABC",
    "image_uri": "https://app.aavso.org/vsp/chart/X12345ABC.png?format=json",
    "star": "V1 Psc (test)",
    "fov": 30.0,
    "maglimit": 14.5,
    "title": "",
    "comment": "",
    "resolution": 150,
    "dss": False,
    "special": None,
    "ra": "23:59:52.80",
    "dec": "-11:58:12.0",
    "auid": "000-TST-001",
    "photometry": [
        {
            "auid": "000-TST-101",
            "ra": "23:59:40.00",
            "dec": "-12:03:00.0",
            "label": 105,
            "bands": [
                {"band": "V", "mag": 10.512, "error": 0.031},
                {"band": "B", "mag": 11.2, "error": 0.05},
                {"band": "Rc", "mag": 10.12, "error": None},
            ],
            "comments": "",
        },
        {
            "auid": "000-TST-102",
            "ra": "00:00:20.50",
            "dec": "-11:50:00.0",
            "label": "118",
            "bands": [{"band": "V", "mag": 11.833, "error": None}, {"band": "Ic", "mag": None, "error": None}],
            "comments": "",
        },
        {
            "auid": "000-TST-103",
            "ra": "00:00:01.00",
            "dec": "-00:10:00",
            "label": "124",
            "bands": [{"band": "B", "mag": 12.9, "error": 0.02}],
            "comments": "",
        },
    ],
}


def write(tmp_path: Path, data: object, name: str = "chart.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def test_a_vsp_json_chart_becomes_a_sequence_in_the_reports_band(tmp_path: Path) -> None:
    chart = read_chart(write(tmp_path, GOLDEN))
    assert chart.chart_id == "X12345ABC" and chart.star == "V1 Psc (test)"
    assert chart.ra_deg == pytest.approx((23 + 59 / 60 + 52.8 / 3600) * 15)
    assert chart.dec_deg == pytest.approx(-(11 + 58 / 60 + 12 / 3600))
    first, second, third = chart.stars
    assert first.label == "105" and first.auid == "000-TST-101"
    assert first.bands == {"V": (10.512, 0.031), "B": (11.2, 0.05), "Rc": (10.12, 0.0)}
    assert "Ic" not in second.bands  # listed without a value: not known
    assert third.dec_deg == pytest.approx(-(10 / 60))  # "-00:10:00" stays south
    assert second.ra_deg == pytest.approx((20.5 / 3600) * 15)  # across RA 0h

    sequence = chart_sequence(chart, band="V", target="V1 Psc (test)", check="118")
    assert sequence.chart_id == "X12345ABC"
    assert sequence.target == Star("V1 Psc (test)", chart.ra_deg, chart.dec_deg)
    assert [(s.label, s.mag, s.mag_err) for s in sequence.comparisons] == [("105", 10.512, 0.031)]
    assert sequence.check is not None and (sequence.check.label, sequence.check.mag) == ("118", 11.833)

    by_auid = chart_sequence(chart, band="B", target="X", comparisons=["000-tst-101", "124"])
    assert [(s.label, s.mag) for s in by_auid.comparisons] == [("105", 11.2), ("124", 12.9)]
    red = chart_sequence(chart, band="R", target="X")  # the report's R is VSP's Rc
    assert [(s.label, s.mag) for s in red.comparisons] == [("105", 10.12)]
    assert band_of("R") == "Rc" and band_of("I") == "Ic" and band_of("CV") == "V" and band_of("TG") == "V"
    moved = chart_sequence(chart, band="V", target="X", target_ra_deg=1.0, target_dec_deg=-2.0)
    assert (moved.target.ra_deg, moved.target.dec_deg) == (1.0, -2.0)


def test_bad_charts_give_reasons_naming_the_file_and_the_star(tmp_path: Path) -> None:
    chart = read_chart(write(tmp_path, GOLDEN))
    with pytest.raises(
        ChartError, match=r"chart\.json: no comparison star with a Ic magnitude \(the chart has B, Rc, V\)"
    ):
        chart_sequence(chart, band="I", target="X")
    with pytest.raises(ChartError, match=r"check star 124 has no V magnitude \(it has B\)"):
        chart_sequence(chart, band="V", target="X", check="124")
    with pytest.raises(ChartError, match="check star 999 is not on the chart X12345ABC"):
        chart_sequence(chart, band="V", target="X", check="999")
    with pytest.raises(ChartError, match="comparison star 124 has no V magnitude"):
        chart_sequence(chart, band="V", target="X", comparisons=["105", "124"])
    with pytest.raises(ChartError, match="comparison star 7 is not on the chart"):
        chart_sequence(chart, band="V", target="X", comparisons=["7"])

    bad = tmp_path / "broken.json"
    bad.write_text('{"chartid": "X1", "photometry": [', encoding="utf-8")
    with pytest.raises(ChartError, match=r"broken\.json: not valid JSON at line 1"):
        read_chart(bad)
    with pytest.raises(ChartError, match="no 'photometry' list"):
        read_chart(write(tmp_path, {"chartid": "X1"}, "empty.json"))
    with pytest.raises(ChartError, match="VSP answered with an error"):
        read_chart(write(tmp_path, {"errors": ["Star not found"]}, "error.json"))
    odd = json.loads(json.dumps(GOLDEN))
    odd["photometry"][1]["dec"] = "north"
    with pytest.raises(ChartError, match=r"odd\.json: comparison star 118 \(000-TST-102\): unreadable coordinates"):
        read_chart(write(tmp_path, odd, "odd.json"))
    odd = json.loads(json.dumps(GOLDEN))
    del odd["photometry"][0]["bands"]
    with pytest.raises(ChartError, match=r"comparison star 105 .*: no 'bands' list"):
        read_chart(write(tmp_path, odd, "odd.json"))
    with pytest.raises(ChartError, match=r"chart file .*missing\.json does not exist"):
        read_chart(tmp_path / "missing.json")
    nowhere = dict(GOLDEN, ra=None, dec=None)
    with pytest.raises(ChartError, match="gives no position for X; set the target's ra and dec"):
        chart_sequence(parse_chart_json(json.dumps(nowhere), source="n.json"), band="V", target="X")


def test_vsps_photometry_table_as_csv(tmp_path: Path) -> None:
    table = (
        "#CHART=X12345ABC\n"
        "AUID,RA,Dec,Label,V,B-V,V-I,Comments\n"
        "000-TST-101,23:59:40.00 [359.91667],-12:03:00.0 [-12.05],105,10.512 (0.031),0.688 (0.040),,\n"
        "000-TST-102,00:00:20.50,-11:50:00.0,118,11.833,,0.9 (0.05),check\n"
    )
    chart = read_chart(write(tmp_path, table, "photometry.csv"))
    assert chart.chart_id == "X12345ABC"
    first, second = chart.stars
    assert first.ra_deg == pytest.approx(359.91667, abs=1e-4) and first.dec_deg == pytest.approx(-12.05)
    assert first.bands["V"] == (10.512, 0.031)
    assert first.bands["B"][0] == pytest.approx(11.2) and first.bands["B"][1] == pytest.approx(0.0506, abs=1e-3)
    assert second.bands["Ic"][0] == pytest.approx(10.933)
    sequence = chart_sequence(chart, band="V", target="V1", target_ra_deg=359.97, target_dec_deg=-11.97, check="118")
    assert sequence.chart_id == "X12345ABC" and [s.label for s in sequence.comparisons] == ["105"]

    with pytest.raises(ChartError, match=r"bad\.csv: comparison star 105, column V: 'ten' is not a magnitude"):
        read_chart(write(tmp_path, "AUID,RA,Dec,Label,V\n1,00:00:00,+1:00:00,105,ten\n", "bad.csv"))
    with pytest.raises(ChartError, match="needs the columns AUID or Label, RA and Dec"):
        read_chart(write(tmp_path, "Name,V\nx,10.0\n", "cols.csv"))


def test_the_observers_own_comparison_stars() -> None:
    stars = [Star("A", 10.0, -5.0, 11.0, 0.02), Star("B", 10.1, -5.1, 12.0), Star("K", 10.2, -5.0, 11.5)]
    sequence = own_sequence("RZ Cet", 10.05, -5.05, stars, check="k")
    assert sequence.chart_id is None and [s.label for s in sequence.comparisons] == ["A", "B"]
    assert sequence.check is not None and sequence.check.label == "K"
    with pytest.raises(ChartError, match="own comparison star B of RZ Cet has no magnitude"):
        own_sequence("RZ Cet", 10.0, -5.0, [Star("A", 10.0, -5.0, 11.0), Star("B", 10.1, -5.1, None)])
    with pytest.raises(ChartError, match="check star Z of RZ Cet is not among"):
        own_sequence("RZ Cet", 10.0, -5.0, stars, check="Z")


class _Vsp(BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []
    body = json.dumps(GOLDEN).encode()

    def do_GET(self) -> None:  # http.server's name
        type(self).hits.append(self.path)
        if "/X12345ABC/" in self.path or "star=" in self.path:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(self.body)
        else:
            self.send_response(404, "Not Found")
            self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def vsp_server() -> Iterator[str]:
    _Vsp.hits = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Vsp)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/vsp/api/chart/"
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_fetching_is_opt_in_cached_and_offline_first(tmp_path: Path, vsp_server: str) -> None:
    cache = tmp_path / "charts"
    with pytest.raises(ChartError, match=r"fetching charts is off .* download it from VSP"):
        load_chart(chart_id="X12345ABC", cache_dir=cache, base_url=vsp_server)
    assert _Vsp.hits == []

    chart = load_chart(chart_id="X12345ABC", cache_dir=cache, fetch=True, base_url=vsp_server)
    assert chart.chart_id == "X12345ABC" and len(chart.stars) == 3
    assert _Vsp.hits == ["/vsp/api/chart/X12345ABC/?format=json"]
    assert json.loads((cache / "X12345ABC.json").read_text()) == GOLDEN

    # Cached: no network, even with fetching off.
    again = load_chart(chart_id="X12345ABC", cache_dir=cache, fetch=False, base_url="http://127.0.0.1:9/")
    assert again.stars == chart.stars and len(_Vsp.hits) == 1

    by_star = load_chart(star="V1 Psc (test)", cache_dir=cache, fetch=True, base_url=vsp_server, fov_arcmin=30)
    assert by_star.chart_id == "X12345ABC" and "star=V1+Psc+%28test%29" in _Vsp.hits[-1] and "fov=30" in _Vsp.hits[-1]
    assert (cache / "star-v1_psc_test.json").is_file()

    with pytest.raises(ChartError, match=r"cannot fetch AAVSO chart X999 from .*: VSP answered HTTP 404"):
        load_chart(chart_id="X999", cache_dir=cache, fetch=True, base_url=vsp_server)
    with pytest.raises(ChartError, match=r"cannot fetch AAVSO chart X998 from http://127\.0\.0\.1:9/.*offline\?"):
        load_chart(chart_id="X998", cache_dir=cache, fetch=True, base_url="http://127.0.0.1:9/", timeout_s=5)
    assert not (cache / "X999.json").exists()
