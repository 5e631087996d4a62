"""SOAP 1.1: safe XML parsing, envelopes, faults, WS-Addressing and XSD validation."""
