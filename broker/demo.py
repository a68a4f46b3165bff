"""The main job: the story of one complex case, told through the real API.

`make demo` runs this on the embedded default (SQLite, in-process replay
cache, regopy), with the broker and one adapter per partner listening on
loopback and talking real HTTP. Every step is a partner's system calling the
broker exactly as contract.md says; the output is written for a person.
"""

from __future__ import annotations

import json
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import httpx

from adapters.sdk.client import BrokerClient
from broker.audit.checkpoint import Checkpoint, verify_checkpoint
from broker.audit.merkle import leaf_hash, root_from_leaves
from broker.convenant import load_convenant
from broker.keys import KeyStore, keyset_from_jwks
from broker.settings import Settings
from broker.stack import LocalStack, start_local_stack

GEMEENTE = "gemeente-lekstroom"
POLITIE = "politie-lekstroom"
DE_LINGE = "woonstichting-de-linge"
BUURTTEAM = "buurtteam-lekstroom"
GGD = "ggd-lekstroom"
FG = "fg-lekstroom"

CASEMANAGER = {"user": "j.devries", "function": "casusregisseur woonoverlast"}

WOONGOED = "woongoed-lekstroom"

CASE_B = {
    "reference": "WO-2026-0157",
    "kind": "complex",
    "address": {"postcode": "4102 CD", "huisnummer": 3, "toevoeging": "A", "plaats": "Lekstroom"},
    "dwelling_owner": WOONGOED,
    "subjects": [
        {
            "ref": "og-1",
            "role": "overlastgever",
            "name": "Sanne Bakker",
            "birth_date": "1990-05-21",
        },
        {"ref": "m-1", "role": "melder", "name": "Ahmet Yilmaz", "birth_date": "1968-09-09"},
    ],
    "partners": [POLITIE],
    "criteria": [1, 2],
}

CASE_A = {
    "reference": "WO-2026-0142",
    "kind": "complex",
    "address": {"postcode": "4101 AB", "huisnummer": 12, "plaats": "Lekstroom"},
    "dwelling_owner": DE_LINGE,
    "subjects": [
        {
            "ref": "og-1",
            "role": "overlastgever",
            "name": "Marco de Wit",
            "birth_date": "1979-03-14",
        },
        {"ref": "m-1", "role": "melder", "name": "Fatima el Amrani", "birth_date": "1985-07-02"},
        {"ref": "o-1", "role": "omwonende", "name": "Joop Verbeek", "birth_date": "1952-11-30"},
    ],
    "partners": [POLITIE, BUURTTEAM, GGD],
    "criteria": [1, 2, 3, 6],
}


class Story:
    def __init__(self) -> None:
        self.step = 0

    def chapter(self, title: str) -> None:
        self.step += 1
        print(f"\n{self.step}. {title}")
        print("   " + "-" * (len(title) + 3))

    def say(self, text: str) -> None:
        print(textwrap.indent(textwrap.fill(text, 92), "   "))

    def show(self, label: str, value: Any) -> None:
        rendered = json.dumps(value, ensure_ascii=False, indent=2)
        print(f"   {label}:")
        print(textwrap.indent(rendered, "     "))


def _expect(response: httpx.Response, status: int) -> dict[str, Any]:
    if response.status_code != status:
        raise SystemExit(
            f"demo failed: expected HTTP {status}, got {response.status_code}:"
            f" {response.text[:300]}"
        )
    body: dict[str, Any] = response.json()
    return body


def _exchange(
    client: BrokerClient,
    case_id: str,
    subject: str,
    query: str,
    *,
    purpose: str = "aanpak_woonoverlast",
) -> httpx.Response:
    return client.post(
        "/v1/exchanges",
        json={
            "case": case_id,
            "subject": subject,
            "query": query,
            "purpose": purpose,
            "period": {"from": "2025-01-01", "to": "2026-11-20"},
            "on_behalf_of": CASEMANAGER,
        },
    )


def _verify_log_as_dpo(story: Story, dpo: BrokerClient, broker_url: str) -> dict[str, Any]:
    """U3: fetch the export, recompute the Merkle root, check the signed checkpoint."""
    export = dpo.get("/v1/audit/export")
    lines = [json.loads(line) for line in export.text.splitlines() if line.strip()]
    entries, final = lines[:-1], lines[-1]["checkpoint"]
    checkpoint = Checkpoint.from_dict(final)
    jwks = httpx.get(broker_url + "/.well-known/jwks.json").json()
    verify_checkpoint(checkpoint, keys=keyset_from_jwks(jwks))
    root = root_from_leaves([leaf_hash(entry) for entry in entries]).hex()
    if root != checkpoint.root_hash or len(entries) != checkpoint.size:
        raise SystemExit("demo failed: the exported log does not match its signed checkpoint")
    story.say(
        f"The DPO downloaded the log ({len(entries)} entries), recomputed the RFC 9162 Merkle"
        f" root {root[:16]}… and checked the broker's Ed25519 signature on the checkpoint:"
        " the log is intact."
    )
    return {"size": checkpoint.size, "root_hash": checkpoint.root_hash, "entries": entries}


class Demo:
    """The story's acts, each a few API calls by one partner system."""

    def __init__(self, stack: LocalStack, keys: KeyStore) -> None:
        self.stack = stack
        self.keys = keys
        self.story = Story()
        self._clients: dict[str, BrokerClient] = {}
        self.case_a = ""
        self.case_b = ""
        self.police_b: dict[str, Any] = {}

    def client(self, principal: str) -> BrokerClient:
        if principal not in self._clients:
            self._clients[principal] = BrokerClient(
                base_url=self.stack.broker_url,
                client_id=principal,
                signing_key=self.keys.signing_key(principal),
            )
        return self._clients[principal]

    def close(self) -> None:
        for client in self._clients.values():
            client.close()

    def play(self) -> None:
        print(
            f"Ketenbroker demo: broker at {self.stack.broker_url},"
            f" adapters for {len(self.stack.adapter_urls)} partners on loopback."
        )
        convenant = self.stack.services.convenant
        print(f"Convenant: {convenant.title} ({convenant.version}).")
        self.register_case()
        self.consent_and_start()
        self.ask_the_police()
        self.ask_the_buurtteam()
        self.investigation_case()
        self.partner_status()
        self.forbidden_requests()
        self.dpo_audit()

    def register_case(self) -> None:
        story, gemeente = self.story, self.client(GEMEENTE)
        story.chapter("The gemeente registers a complex case (casusregisseur)")
        created = _expect(gemeente.post("/v1/cases", json=CASE_A), 201)
        self.case_a = created["id"]
        story.say(
            f"Case {CASE_A['reference']} about Lindelaan 12 is registered as {self.case_a}"
            f" with status {created['status']!r}; criteria 1, 2, 3 and 6 of the convenant"
            " hold. Names and birth dates are stored encrypted under a key of this case only."
        )
        story.chapter("Before the corporation consents, nothing flows (seed 004 §5.2)")
        refused = _expect(_exchange(gemeente, self.case_a, "og-1", "politie.meldingen"), 403)
        story.say(f"Refused: code {refused['code']!r}: {refused['detail']}")

    def consent_and_start(self) -> None:
        self.story.chapter("Woonstichting De Linge consents; the casemanager starts the case")
        case = f"/v1/cases/{self.case_a}"
        _expect(self.client(DE_LINGE).post(f"{case}/consent", json={"decision": "granted"}), 200)
        moved = _expect(
            self.client(GEMEENTE).post(f"{case}/transitions", json={"to": "in_behandeling"}), 200
        )
        self.story.say(f"Consent granted; the case is now {moved['status']!r}.")

    def ask_the_police(self) -> None:
        story = self.story
        story.chapter("U1: the casemanager asks the police about the overlastgever")
        answer = _expect(
            _exchange(self.client(GEMEENTE), self.case_a, "og-1", "politie.meldingen"), 200
        )
        basis = answer["legal_basis"]
        story.say(
            f"Decision {answer['decision']!r} on legal basis {basis['law']} {basis['article']}"
            f" (convenant {basis['convenant_article']}). The police system also holds"
            " criminal records, suspects' details and investigation data about this person;"
            " none of it left the broker."
        )
        story.show("Disclosed fields", sorted(answer["data"]))
        story.show("Withheld, with reasons", answer["withheld"])
        story.say(
            "R2: one report's short description mentions drug use, so the free-text scan"
            " withholds the reports field whole; counts and facts still flow."
        )
        story.show("Receipt", {k: answer["receipt"][k] for k in ("log_index", "leaf_hash")})

    def ask_the_buurtteam(self) -> None:
        story = self.story
        story.chapter("The casemanager asks the buurtteam whether it knows the overlastgever (R4)")
        care = _expect(
            _exchange(self.client(GEMEENTE), self.case_a, "og-1", "buurtteam.bekendheid"), 200
        )
        story.say(
            "Only 'known: yes/no' and the care worker's name may leave; the buurtteam's"
            " diagnoses and notes stay with the buurtteam."
        )
        story.show("Disclosed", care["data"])

    def investigation_case(self) -> None:
        story, gemeente, woongoed = self.story, self.client(GEMEENTE), self.client(WOONGOED)
        story.chapter("R3: a second case, while the police run an investigation")
        self.case_b = _expect(gemeente.post("/v1/cases", json=CASE_B), 201)["id"]
        case = f"/v1/cases/{self.case_b}"
        _expect(woongoed.post(f"{case}/consent", json={"decision": "granted"}), 200)
        _expect(gemeente.post(f"{case}/transitions", json={"to": "in_behandeling"}), 200)
        self.police_b = _expect(_exchange(gemeente, self.case_b, "og-1", "politie.meldingen"), 200)
        story.show("Withheld, as the casemanager sees it", self.police_b["withheld"])
        story.say(
            "The requester hears a neutral reason: the answer never reveals that an"
            " investigation is running (seed 004 §5.3). The true reason is in the audit log."
        )

    def partner_status(self) -> None:
        story = self.story
        story.chapter("U2: the corporation asks for partner status on the case")
        status = _expect(self.client(DE_LINGE).get(f"/v1/cases/{self.case_a}/status"), 200)
        story.show("Status", status)
        story.say(
            "Care partners appear only as 'zorgpartner': which care organisation is involved"
            " is itself health data."
        )

    def forbidden_requests(self) -> None:
        story, case = self.story, self.case_a
        corporatie, politie = self.client(DE_LINGE), self.client(POLITIE)
        story.chapter("Requests the convenant forbids are refused, with their reason")
        forbidden = _expect(_exchange(corporatie, case, "og-1", "politie.meldingen"), 403)
        story.say(
            f"The corporation asks the police: refused, {forbidden['code']!r}:"
            f" {forbidden['detail']}"
        )
        care_refused = _expect(_exchange(corporatie, case, "og-1", "buurtteam.bekendheid"), 403)
        story.say(
            f"The corporation asks the buurtteam (R4: care answers the casemanager only):"
            f" refused, {care_refused['code']!r}: {care_refused['detail']}"
        )
        wrong_purpose = _expect(
            _exchange(politie, case, "og-1", "corporatie.huurrelatie", purpose="opsporing"), 403
        )
        story.say(
            f"The police ask the corporation for a criminal investigation: refused,"
            f" {wrong_purpose['code']!r}: {wrong_purpose['detail']}"
        )
        stranger = _expect(
            _exchange(self.client(GEMEENTE), "case_doesnotexist", "og-1", "politie.meldingen"),
            404,
        )
        story.say(
            f"A case that does not exist or is not yours: {stranger['code']!r}"
            " (404, no existence leak)."
        )

    def dpo_audit(self) -> None:
        story, dpo = self.story, self.client(FG)
        story.chapter("U3: the DPO audits the exchange log")
        story.show("Signed checkpoint", _expect(dpo.get("/v1/audit/checkpoint"), 200))
        verified = _verify_log_as_dpo(story, dpo, self.stack.broker_url)
        decisions: dict[str, int] = {}
        for entry in verified["entries"]:
            key = f"{entry.get('kind')}:{entry.get('decision')}"
            decisions[key] = decisions.get(key, 0) + 1
        story.show("Entries by kind and decision", decisions)
        sample = next(
            e
            for e in verified["entries"]
            if e.get("query") == "politie.meldingen" and e["decision"] in {"permit", "partial"}
        )
        story.show(
            "One entry as the DPO sees it (no names, no values: a pseudonym and a payload hash)",
            {
                k: sample[k]
                for k in (
                    "index",
                    "time",
                    "requester",
                    "provider",
                    "subject",
                    "legal_basis",
                    "fields_disclosed",
                    "fields_withheld",
                    "payload_hash",
                    "trace_id",
                )
            },
        )
        hidden = next(
            e
            for e in verified["entries"]
            if e.get("exchange") == self.police_b["exchange"]
            and e["decision"] in {"permit", "partial"}
        )
        story.show(
            "What the DPO sees for the R3 exchange (the true reasons)",
            [w for w in hidden["fields_withheld"] if w["code"] != "not_in_convenant"],
        )
        print(f"\nDemo complete: log size {verified['size']}, root {verified['root_hash']}.")


def play(stack: LocalStack, keys: KeyStore) -> None:
    demo = Demo(stack, keys)
    try:
        demo.play()
    finally:
        demo.close()


def run_demo(settings: Settings) -> int:
    convenant = load_convenant(settings.convenant_path)
    keys = KeyStore(settings.keys_dir)
    missing = [p for p in ["broker", *convenant.principal_ids()] if not keys.has(p)]
    if missing:
        print(f"missing key pairs for {missing}; run `ketenbroker keys init` first")
        return 2
    with tempfile.TemporaryDirectory(prefix="ketenbroker-demo-") as workdir:
        base = settings.model_dump(exclude={"issuer", "adapter_urls"})
        base.update(
            profile="embedded",
            storage_backend="sqlite",
            cache_backend="memory",
            policy_engine="embedded",
            sqlite_path=Path(workdir) / "ketenbroker.sqlite3",
        )
        with start_local_stack(base=base) as stack:
            play(stack, keys)
    return 0
