"""The identifier scan flags obvious personal identifiers with their rows, and leaves clinical numbers alone."""

from __future__ import annotations

import json
from pathlib import Path

from medcot_ui.training.config import DataSettings
from medcot_ui.data.report import analyse, phi_markdown, phi_table
from medcot_ui.data.phi import scan_rows, scan_text
from medcot_ui.settings import DEMO_DATA_FILE, DEMO_MODEL_ID


def test_emails_phone_numbers_dates_of_birth_and_record_numbers_are_found() -> None:
    text = ("Mr Smith (DOB: 04/07/1961, MRN 00482913) can be reached on (555) 123-4567 or "
            "+44 20 7946 0958 or at john.smith@example.org; born on 3 March 1961. SSN 123-45-6789.")
    kinds = sorted(kind for kind, _ in scan_text(text))
    assert kinds == ["SSN-like number", "date of birth", "date of birth", "email", "phone number",
                     "phone number", "record number"]
    assert ("record number", "MRN 00482913") in scan_text(text)
    assert ("email", "john.smith@example.org") in scan_text(text)


def test_clinical_numbers_are_not_taken_for_identifiers() -> None:
    text = ("BP 120/80 mmHg, HR 112, potassium 5.4 mmol/L, troponin 0.04 ng/mL, heparin 5000 units, "
            "HbA1c 7.2 %, ECG at 10:45 on day 3, tidal volume 6-8 mL/kg, GCS 3-15, ICD-10 I21.4, "
            "a 58-year-old man, 2-3 days, ratio 1:40.")
    assert scan_text(text) == []


def test_the_bundled_demo_data_has_no_identifiers() -> None:
    rows = [json.loads(line) for line in DEMO_DATA_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]
    findings, flagged = scan_rows([tuple(r.values()) for r in rows], tuple(rows[0]))
    assert (findings, flagged) == ([], 0)


def test_the_dataset_report_lists_the_rows_and_columns_with_identifiers(home: Path, tmp_path: Path) -> None:
    rows = [{"Question": f"Question {i}?", "Complex_CoT": "Reasoning.", "Response": "Answer."} for i in range(6)]
    rows[1]["Question"] = "Patient jane.doe@example.com reports chest pain. What next?"
    rows[4]["Complex_CoT"] = "The chart says medical record number: A-99812 and DOB 1970-01-31."
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    report = analyse(DataSettings(source="file", file_path=str(path), split="train"), DEMO_MODEL_ID, 2048)
    assert report.error is None
    assert phi_table(report) == [[2, "Question", "email", "jane.doe@example.com"],
                                 [5, "Complex_CoT", "date of birth", "DOB 1970-01-31"],
                                 [5, "Complex_CoT", "record number", "medical record number: A-99812"]]
    assert phi_markdown(report).startswith("**2 rows may hold personal identifiers**")
    assert "2 rows may contain personal identifiers (see the identifier scan below)" in report.warnings
