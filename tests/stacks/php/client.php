<?php
// PHP's own SoapClient (ext-soap) as a leverancier's zaaksysteem uses it: the published WSDLs
// fetched from the running adapter (?wsdl, unmodified) over mutual TLS, then the scenario of
// tests/test_soap_stacks.py. Reads the scenario as JSON on stdin and prints what the stack
// returned as JSON on stdout, in the shape every stack's client prints.
// PHP's TLS streams take PEM files, not PKCS#12: the organisation's certificate and key.

declare(strict_types=1);

const WSA = 'http://www.w3.org/2005/08/addressing';

function open_client(string $wsdl, array $client): SoapClient
{
    $context = stream_context_create(['ssl' => [
        'local_cert' => $client['cert'],
        'local_pk' => $client['key'],
        'cafile' => $client['root'],
        'verify_peer' => true,
        'verify_peer_name' => true,
    ]]);
    return new SoapClient($wsdl, [
        'stream_context' => $context,
        'cache_wsdl' => WSDL_CACHE_NONE,
        'exceptions' => true,
        'trace' => true,
        'soap_version' => SOAP_1_1,
    ]);
}

// SoapClient has no WS-Addressing of its own: its users add the headers as SoapHeaders.
function addressing(SoapClient $client, string $to, string $action): void
{
    $client->__setSoapHeaders([
        new SoapHeader(WSA, 'To', $to),
        new SoapHeader(WSA, 'Action', $action),
        new SoapHeader(WSA, 'MessageID', 'urn:uuid:' . bin2hex(random_bytes(16))),
    ]);
}

function fault_of(callable $call): array
{
    try {
        $call();
    } catch (SoapFault $fault) {
        $detail = $fault->detail ?? null;
        $holder = $detail->ApplicationFault ?? $detail->DependentServiceFault ?? null;
        return [
            'faultcode' => $fault->faultcode,
            'faultstring' => $fault->faultstring,
            'code' => $holder->Code ?? null,
            'message' => $holder->Message ?? null,
        ];
    }
    throw new RuntimeException('a fault was expected');
}

function aanvraag(string $leverancier, array $keys): array
{
    return ['validateAbonnementenAanvraag' => [
        'berichtleverancierCode' => $leverancier,
        'berichtTypeCode' => 'BESLUIT',
        'klanten' => ['Klant' => array_map(fn($key) => ['Key' => $key, 'Rol' => 'Burger'], $keys)],
    ]];
}

// A sequence of one comes back as an object, of more as an array: SoapClient's classmap-less view.
function as_list(mixed $value): array
{
    return is_array($value) ? $value : [$value];
}

function abonnementen(object $result): array
{
    return array_map(
        fn($a) => [$a->klant->Key, $a->isBerichtSturen],
        as_list($result->ValidateAbonnementenResult->Abonnement),
    );
}

$s = json_decode(stream_get_contents(STDIN), true, flags: JSON_THROW_ON_ERROR);
$out = [];

$validatie = open_client($s['abonnementen_wsdl'], $s['client']);
$out['abonnementen'] = abonnementen($validatie->ValidateAbonnementen(aanvraag($s['leverancier'], $s['bsns'])));
$out['abonnementen_fault'] = fault_of(
    fn() => $validatie->ValidateAbonnementen(aanvraag($s['other_leverancier'], [$s['bsns'][0]]))
);

$strikt = open_client($s['abonnementen_wsdl'], $s['strikt_client']);
addressing($strikt, $s['abonnementen_endpoint'], $s['validate_action']);
$out['abonnementen_2w_be'] = abonnementen($strikt->ValidateAbonnementen(aanvraag($s['strikt'], $s['bsns'])));
addressing($strikt, $s['abonnementen_endpoint'], $s['validate_action']);
$out['abonnementen_2w_be_fault'] = fault_of(
    fn() => $strikt->ValidateAbonnementen(aanvraag($s['leverancier'], [$s['bsns'][0]]))
);

$zaken = open_client($s['lopende_zaken_wsdl'], $s['client']);
$z = $s['zaak'];
$out['zaak_aanleveren'] = $zaken->ZaakAanleveren(['zaak' => [
    'identificatie' => $z['identificatie'],
    'omschrijving' => $z['omschrijving'],
    'startdatum' => $z['startdatum'],
    'initiator' => ['bsn' => $z['bsn']],
    'status' => ['omschrijving' => $z['eerste_status'], 'datumStatusGezet' => $z['eerste_datum']],
]])->resultaat;
$update = [
    'identificatie' => $z['identificatie'],
    'status' => ['omschrijving' => $z['tweede_status'], 'datumStatusGezet' => $z['tweede_datum']],
];
$out['status_aanleveren'] = $zaken->StatusAanleveren($update)->resultaat;
$out['status_herhaald'] = $zaken->StatusAanleveren($update)->resultaat;
$out['zaak_afsluiten'] = $zaken->ZaakAfsluiten([
    'identificatie' => $z['identificatie'],
    'einddatum' => $z['einddatum'],
    'resultaatOmschrijving' => $z['resultaat'],
])->resultaat;
$mine = null;
foreach (as_list($zaken->ZakenOpvragen(['bsn' => $z['bsn']])->zaak) as $found) {
    if ($found->identificatie === $z['identificatie']) {
        $mine = $found;
    }
}
$out['zaak'] = [
    'status' => $mine->status->omschrijving,
    'datumStatusGezet' => $mine->status->datumStatusGezet,
    'einddatum' => $mine->einddatum,
    'resultaat' => $mine->resultaat,
    'historie' => array_map(fn($st) => $st->omschrijving, as_list($mine->statushistorie->status)),
];
$out['zaak_fault'] = fault_of(
    fn() => $zaken->StatusAanleveren(['identificatie' => $s['unknown_zaak'], 'status' => $update['status']])
);
echo json_encode($out, JSON_THROW_ON_ERROR | JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE);
