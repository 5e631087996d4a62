"""ValidateAbonnementen in spyne doing the bare work of `bare_lxml`: spyne parses the SOAP
1.1 envelope into its models and serialises the answer; no XSD validation (validator None),
no authorisation, no storage. Every Klant is answered with isBerichtSturen true.

The models give the elements the namespaces of the Logius WSDL, so the adapter's request
and the adapter's answer shape work unchanged.
"""

from __future__ import annotations

from typing import Any, ClassVar

from spyne import Application, Array, Boolean, ComplexModel, ServiceBase, Unicode, rpc
from spyne.protocol.soap import Soap11
from spyne.server.wsgi import WsgiApplication

from adapter.berichtenbox.abonnementen import SHR, SVC, TYP


class Klant(ComplexModel):  # type: ignore[misc]
    __namespace__ = SHR
    _type_info: ClassVar[list[tuple[str, Any]]] = [("Key", Unicode), ("Rol", Unicode)]


class Aanvraag(ComplexModel):  # type: ignore[misc]
    __namespace__ = TYP
    _type_info: ClassVar[list[tuple[str, Any]]] = [
        ("berichtleverancierCode", Unicode),
        ("berichtTypeCode", Unicode),
        ("klanten", Array(Klant, member_name="Klant")),
    ]


class Abonnement(ComplexModel):  # type: ignore[misc]
    __namespace__ = TYP
    _type_info: ClassVar[list[tuple[str, Any]]] = [("klant", Klant), ("isBerichtSturen", Boolean)]


class BerichtenboxValidatieService(ServiceBase):  # type: ignore[misc]
    @rpc(  # type: ignore[misc]
        Aanvraag.customize(sub_name="validateAbonnementenAanvraag"),
        _returns=Array(Abonnement, member_name="Abonnement"),
        _operation_name="ValidateAbonnementen",
        _out_message_name="ValidateAbonnementenResponse",
        _out_variable_name="ValidateAbonnementenResult",
    )
    def validate(ctx: Any, aanvraag: Aanvraag) -> list[Abonnement]:
        return [
            Abonnement(klant=Klant(Key=klant.Key, Rol=klant.Rol), isBerichtSturen=True)
            for klant in aanvraag.klanten or ()
        ]


app = WsgiApplication(
    Application(
        [BerichtenboxValidatieService],
        tns=SVC,
        name="BerichtenboxValidatieService",
        in_protocol=Soap11(validator=None),
        out_protocol=Soap11(),
    )
)
