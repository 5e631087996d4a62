"""Server mode: the matrix of cases, and running it against a target.

`MATRIX` names every case the kit knows, including those it cannot run yet (encrypted and
best-effort signed ebMS): they are reported as not run, never as passed. The osb-rm-s case
runs when the leverancier passes its signed CPA (`Target.signed_ebms`), else it is not run,
saying why. A WUS case is written for the WUS profiles it lists: the unsigned ones for an
organisation on 2W-be (or without a profile), the WS-Security ones for 2W-be-S/2W-be-SE; the
client certificate's organisation has one profile (`Target.wus_profile`), so the cases of
the others are not run, saying why.
`run_matrix` runs the selected profile's cases in order and reports each result to a
callback, which the CLI turns into a rich progress bar.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from adapter.kit.conformance import ebms_cases as eb
from adapter.kit.conformance import wss_cases as wss
from adapter.kit.conformance import wus_cases as wus
from adapter.kit.conformance.model import CaseResult, Finding, Report, Status
from adapter.kit.conformance.probe import Probe, Target

SIGNING = "not run: the kit sends signed ebMS only under osb-rm-s (with --cpa) yet"
PROFILES = ("wus", "ebms", "all")
UNSIGNED = frozenset({"2W-be"})
SIGNED = frozenset({"2W-be-S", "2W-be-SE"})


@dataclass(frozen=True)
class Case:
    case_id: str
    title: str
    group: str  # "wus" or "ebms"
    rule: str
    fix: str
    run: Callable[[Probe], None] | None  # None: listed, not run (see `not_run`)
    not_run: str | None = None
    required: bool = True
    wus_profiles: frozenset[str] = UNSIGNED  # the organisation's WUS profiles it is for
    needs_signed_cpa: bool = False  # runs only with `--cpa FILE` of an osb-rm-s channel


FAULT_RULE = "SPEC Part C (ValidateAbonnementen rejections); SPEC-digikoppeling §1.6"
FAULT_FIX = (
    "answer with HTTP 500, a SOAP 1.1 Fault with faultcode Client and a faultstring that starts "
    "with the Digikoppeling code, and a signed receipt that records the refusal"
)
EBMS_ERROR_RULE = "SPEC Part C (ebMS error mapping); SPEC-digikoppeling §2.8"
EBMS_ERROR_FIX = (
    "refuse with a MessageError (ErrorList, codeContext urn:oasis:names:tc:ebxml-msg:service:"
    "errors) with this errorCode, and a signed receipt recording the refusal"
)
BV_RULE = "SPEC A §1.4-1.5 (BerichtVerwerkResponse, VerwerkingsCode), Part B (result pairs)"
BV_FIX = "judge every Bericht as SPEC Part B says and send one result entry per Bericht"


def _wus_fault(case_id: str, title: str, run: Callable[[Probe], None]) -> Case:
    return Case(case_id, title, "wus", FAULT_RULE, FAULT_FIX, run)


def _ebms_error(case_id: str, title: str, run: Callable[[Probe], None]) -> Case:
    return Case(case_id, title, "ebms", EBMS_ERROR_RULE, EBMS_ERROR_FIX, run)


def _signed(case_id: str, title: str, group: str, rule: str) -> Case:
    return Case(case_id, title, group, rule, "", None, SIGNING, required=False)


def _wss_fault(case_id: str, title: str, build: Callable[[Probe], bytes], code: str) -> Case:
    run = wss.wss_fault_case(build, code)
    return Case(case_id, title, "wus", wss.WSS_RULE, wss.WSS_FAULT_FIX, run, wus_profiles=SIGNED)


MATRIX: tuple[Case, ...] = (
    Case(
        "wus.validate-abonnementen.no-wsa",
        "ValidateAbonnementen without WS-Addressing (the Logius form)",
        "wus",
        "SPEC A §2, Part B (ValidateAbonnementen limits: one Abonnement per Klant, in order)",
        "answer one Abonnement per Klant in request order with isBerichtSturen per the account",
        wus.validate_no_wsa,
    ),
    Case(
        "wus.validate-abonnementen.2w-be",
        "ValidateAbonnementen under Digikoppeling 2W-be (WS-Addressing)",
        "wus",
        wus.WS_A,
        wus.WS_A_FIX,
        wus.validate_2w_be,
    ),
    Case(
        "wus.validate-abonnementen.2w-be-s",
        "ValidateAbonnementen under 2W-be-S: signed, answered signed and confirmed",
        "wus",
        wss.WSS_RULE,
        wss.WSS_FIX,
        wss.validate_signed,
        wus_profiles=frozenset({"2W-be-S"}),
    ),
    Case(
        "wus.validate-abonnementen.2w-be-se",
        "ValidateAbonnementen under 2W-be-SE: signed and encrypted both ways",
        "wus",
        wss.WSS_RULE,
        wss.WSS_FIX,
        wss.validate_signed,
        wus_profiles=frozenset({"2W-be-SE"}),
    ),
    _wss_fault(
        "wus.wss.fault.unsigned",
        "a request without wsse:Security: wsse:InvalidSecurity",
        wss.unsigned,
        "InvalidSecurity",
    ),
    _wss_fault(
        "wus.wss.fault.body-not-signed",
        "a signature over a copy of the Body, not the Body (wrapping): wsse:FailedCheck",
        wss.body_not_signed,
        "FailedCheck",
    ),
    _wss_fault(
        "wus.wss.fault.stale-timestamp",
        "a request signed an hour ago: wsse:MessageExpired",
        wss.stale_timestamp,
        "MessageExpired",
    ),
    _wus_fault(
        "wus.fault.0001-not-well-formed",
        "not well-formed XML: 0001",
        wus.fault_case(wus.not_well_formed, "0001", operation=None),
    ),
    _wus_fault(
        "wus.fault.0001-dtd",
        "a DTD in the request: 0001",
        wus.fault_case(wus.with_dtd, "0001", operation=None),
    ),
    _wus_fault(
        "wus.fault.0001-too-deep",
        "XML nested past the parser limit: 0001",
        wus.fault_case(wus.too_deep, "0001", operation=None),
    ),
    _wus_fault("wus.fault.0001-too-large", "a body over the request limit: 0001", wus.too_large),
    _wus_fault(
        "wus.fault.0003-soapaction",
        "a SOAPAction of no operation: 0003",
        wus.fault_case(wus.wrong_soap_action, "0003", operation=None),
    ),
    _wus_fault(
        "wus.fault.0004-xsd",
        "a payload failing the XSD: 0004",
        wus.fault_case(wus.not_xsd_valid, "0004"),
    ),
    _wus_fault(
        "wus.fault.0005-wsa-to",
        "WS-A without wsa:To: 0005",
        wus.fault_case(wus.wsa_without_to, "0005"),
    ),
    _wus_fault(
        "wus.fault.0007-wsa-messageid",
        "WS-A without wsa:MessageID: 0007",
        wus.fault_case(wus.wsa_without_message_id, "0007"),
    ),
    _wus_fault(
        "wus.fault.0009-not-utf8",
        "a request not in UTF-8: 0009",
        wus.fault_case(wus.not_utf8, "0009", operation=None),
    ),
    _wus_fault(
        "wus.fault.leverancier",
        "berichtleverancierCode not the caller's: Aanvraag ongeldig",
        wus.fault_case(wus.other_leverancier, "Aanvraag ongeldig", "ApplicationFault"),
    ),
    _wus_fault(
        "wus.fault.elfproef",
        "a Key failing the elfproef: Aanvraag ongeldig",
        wus.fault_case(wus.elfproef, "Aanvraag ongeldig", "ApplicationFault"),
    ),
    _wus_fault(
        "wus.fault.too-many-klanten",
        "251 Klanten: Aanvraag ongeldig",
        wus.fault_case(wus.too_many_klanten, "Aanvraag ongeldig", "ApplicationFault"),
    ),
    Case(
        "wus.lopende-zaken.zaak-aanleveren",
        "Lopende Zaken over WUS: ZaakAanleveren",
        "wus",
        "SPEC Part C (Lopende Zaken WUS contract)",
        "accept ZaakAanleveren and answer its resultaat with a signed receipt",
        wus.zaak_aanleveren,
    ),
    Case(
        "wus.lopende-zaken.lz002",
        "Lopende Zaken over WUS: a BSN failing the elfproef is LZ002",
        "wus",
        "SPEC Part C (Lopende Zaken WUS contract: ApplicationFault with Code)",
        "refuse with an ApplicationFault carrying Code LZ002",
        wus.zaak_elfproef,
    ),
    Case(
        "wus.stuf.zaklk01",
        "Lopende Zaken over StUF: zakLk01 answered with Bv01",
        "wus",
        "SPEC Part C (StUF zakLk01: Bv01 with crossRefnummer)",
        "answer a zakLk01 with a Bv01 whose crossRefnummer is the request's referentienummer",
        wus.stuf_bv01,
    ),
    Case(
        "wus.stuf.fo01",
        "Lopende Zaken over StUF: a wrong ontvanger is Fo01 LZ007",
        "wus",
        "SPEC Part C (StUF zakLk01: the ontvanger must be MijnOverheid's OIN)",
        "refuse with a Fo01 in the fault detail, code LZ007",
        wus.stuf_fo01,
    ),
    Case(
        "ebms.ping",
        "ebMS Ping answered with Pong",
        "ebms",
        "SPEC-digikoppeling §2.9 (Ping/Pong)",
        "answer a Ping with a Pong whose RefToMessageId is the Ping's MessageId",
        eb.ping_pong,
    ),
    Case(
        "ebms.berichtverwerk.osb-rm",
        "BerichtVerwerk under osb-rm: Acknowledgment, receipt and result",
        "ebms",
        eb.ACK_RULE + "; " + BV_RULE,
        eb.ACK_FIX,
        eb.batch_case(eb.two_letters, eb.subscribed_and_not),
    ),
    Case(
        "ebms.berichtverwerk.osb-be",
        "BerichtVerwerk under osb-be (best effort): accepted and answered",
        "ebms",
        "SPEC-digikoppeling §2.1-2.2 (osb-be: no AckRequested, no DuplicateElimination)",
        "accept a best-effort message and still send its result",
        eb.batch_case(eb.two_letters, eb.subscribed_and_not, reliable=False),
    ),
    Case(
        "ebms.berichtverwerk.osb-rm-s",
        "BerichtVerwerk under osb-rm-s: signed, with a signed Acknowledgment and result",
        "ebms",
        eb.SIGNED_RULE + "; " + BV_RULE,
        eb.SIGNED_FIX,
        eb.signed_batch,
        needs_signed_cpa=True,
    ),
    _signed(
        "ebms.berichtverwerk.osb-rm-e",
        "BerichtVerwerk under osb-rm-e (encrypted)",
        "ebms",
        "SPEC-digikoppeling §2.7",
    ),
    _signed(
        "ebms.berichtverwerk.osb-be-s",
        "BerichtVerwerk under osb-be-s (signed)",
        "ebms",
        "SPEC-digikoppeling §2.7",
    ),
    _signed(
        "ebms.berichtverwerk.osb-be-e",
        "BerichtVerwerk under osb-be-e (encrypted)",
        "ebms",
        "SPEC-digikoppeling §2.7",
    ),
    Case(
        "ebms.berichtverwerk.duplicate",
        "the same MessageId twice: the stored answer, processed once",
        "ebms",
        "SPEC-digikoppeling §2.4 (duplicate elimination)",
        "answer a repeated MessageId with the original Acknowledgment",
        eb.duplicate,
    ),
    Case(
        "ebms.berichtverwerk.xsd",
        "a batch failing the XSD: one nil-GUID XmlValidatieTegenXsdValtNegatiefUit",
        "ebms",
        BV_RULE,
        BV_FIX,
        eb.batch_case(
            eb.one_letter,
            eb.whole_batch("XmlValidatieTegenXsdValtNegatiefUit"),
            edit=eb.soort_bedrijf,
        ),
    ),
    Case(
        "ebms.berichtverwerk.oin",
        "BerichtLeverancierID not the sender's: OinInCPAKomtNietOvereenMetOinInBericht",
        "ebms",
        "SPEC Part C (Identity and authorisation)",
        BV_FIX,
        eb.batch_case(
            eb.one_letter,
            eb.whole_batch("OinInCPAKomtNietOvereenMetOinInBericht"),
            leverancier=eb.other_leverancier,
        ),
    ),
    Case(
        "ebms.berichtverwerk.aanmaakdatum",
        "AanmaakDatum 14 days ago: AanmaakDatumLigtTeVerInHetVerleden",
        "ebms",
        "SPEC A §1.3 (AanmaakDatum), Part C (date rules)",
        BV_FIX,
        eb.batch_case(
            eb.one_letter,
            eb.every("AanmaakDatumLigtTeVerInHetVerleden"),
            aanmaak=timedelta(days=14),
        ),
    ),
    Case(
        "ebms.berichtverwerk.geen-pdf",
        "a Bijlage that is no PDF: TechnischProbleem",
        "ebms",
        "SPEC Part B (PDF check on content; attachment that is not a PDF)",
        BV_FIX,
        eb.batch_case(eb.not_a_pdf, eb.every("TechnischProbleem")),
    ),
    Case(
        "ebms.abonnement-aanvraag",
        "AbonnementAanvraag (BSNLijst): Acknowledgment and gzip AbonnementAntwoord",
        "ebms",
        "SPEC A §3, Part B (bulk subscriptions)",
        "answer GLOBE-R-A-Request with GLOBE-R-A-Result, a gzip AbonnementAntwoord per BSN",
        eb.abonnement_aanvraag,
    ),
    _ebms_error(
        "ebms.error.unknown-cpa",
        "an unknown CPAId: ValueNotRecognized",
        eb.error_case("ValueNotRecognized", soap_edit=eb.unknown_cpa),
    ),
    _ebms_error(
        "ebms.error.unknown-action",
        "an Action the CPA does not know: ValueNotRecognized",
        eb.error_case("ValueNotRecognized", soap_edit=eb.unknown_action),
    ),
    _ebms_error(
        "ebms.error.cid",
        "a Manifest cid: that resolves to no part: MimeProblem",
        eb.error_case("MimeProblem", manifest=["ontbreekt@conformance-kit"]),
    ),
    _ebms_error(
        "ebms.error.party",
        "From/PartyId not the certificate's OIN: SecurityFailure",
        eb.error_case("SecurityFailure", from_oin=eb.other_party),
    ),
    _ebms_error(
        "ebms.error.soapaction",
        "SOAPAction other than ebXML: OtherXml",
        eb.error_case("OtherXml", soap_action='"Onbekend"', hash_of="raw"),
    ),
)


def select(profile: str, only: Sequence[str] = ()) -> list[Case]:
    """The cases of a profile (wus, ebms or all), optionally only the named case ids."""
    if profile not in PROFILES:
        raise ValueError(f"profile {profile!r}: choose one of {', '.join(PROFILES)}")
    cases = [c for c in MATRIX if profile == "all" or c.group == profile]
    if only:
        unknown = set(only) - {c.case_id for c in cases}
        if unknown:
            raise ValueError(f"unknown case(s) for profile {profile}: {', '.join(sorted(unknown))}")
        cases = [c for c in cases if c.case_id in only]
    return cases


SIGNED_CPA_HINT = (
    "pass --cpa FILE, the osb-rm-s CPA of your organisation with the target (the kit signs "
    "with the --p12 key)"
)


def _not_for(case: Case, target: Target) -> str | None:
    """Why a case does not fit the target as given: a signed ebMS case without an osb-rm-s
    CPA, a WUS case for another WUS profile than the client certificate's organisation's."""
    if case.needs_signed_cpa:
        channel = target.signed_ebms
        if channel is None:
            return f"not run: {SIGNED_CPA_HINT}"
        if channel.party.security.profile_suffix != "-s" or not channel.party.acknowledges():
            return f"not run: CPA {channel.cpa.cpa_id} of --cpa is not osb-rm-s; {SIGNED_CPA_HINT}"
        return None
    if case.group != "wus":
        return None
    profile = target.wus_profile
    if profile in case.wus_profiles:
        return None
    if profile in SIGNED:
        return (
            f"not run: the client certificate's organisation uses {profile}, which refuses "
            "this case's unsigned request; run it with the certificate of an organisation on "
            "2W-be (or without a profile)"
        )
    wanted = " or ".join(sorted(case.wus_profiles))
    return (
        f"not run: needs an organisation on {wanted}; pass --wus-profile {wanted.split()[0]} "
        "with the certificate of an organisation the target has on that profile"
    )


def run_case(case: Case, target: Target) -> CaseResult:
    unfit = _not_for(case, target)
    if case.run is None or unfit is not None:
        return CaseResult(
            case.case_id,
            case.title,
            case.group,
            case.rule,
            Status.NOT_RUN,
            reason=case.not_run or unfit,
            # A case for another organisation's profile is not this organisation's failure.
            required=case.required and unfit is None,
        )
    probe = Probe(target, case.rule, case.fix)
    started = time.perf_counter()
    try:
        case.run(probe)
    except Exception as exc:  # the target's answer broke the case: that is its finding
        probe.findings.append(
            Finding(f"the exchange failed: {type(exc).__name__}: {exc}", case.rule, case.fix)
        )
    errors = [f for f in probe.findings if f.severity == "error"]
    return CaseResult(
        case.case_id,
        case.title,
        case.group,
        case.rule,
        Status.FAILED if errors else Status.PASSED,
        tuple(probe.findings),
        tuple(probe.exchanges),
        required=case.required,
        seconds=time.perf_counter() - started,
    )


def run_matrix(
    cases: Sequence[Case],
    target: Target,
    progress: Callable[[Case, CaseResult | None], None] = lambda _case, _result: None,
) -> Report:
    """Run `cases` in order; `progress(case, None)` before and `progress(case, result)` after."""
    report = Report("server", target.base_url, datetime.now(UTC))
    for case in cases:
        progress(case, None)
        result = run_case(case, target)
        report.results.append(result)
        progress(case, result)
    return report
