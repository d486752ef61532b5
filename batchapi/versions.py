"""The Batch REST api-versions Batchsite answers to.

Every Batch client sends `api-version`: azure-batch 15.x sends 2025-06-01, the az
CLI's bundled SDK 2024-02-01.19.0. The wire format of the operations Batchsite
implements is the same in all of these. An unknown version is refused as the
Batch service refuses it (400 InvalidQueryParameterValue); a missing one too
(400 MissingRequiredQueryParameter) for Shared Key clients, while scripts using a
Batchsite token may leave it out.
"""

from .errors import BatchError, invalid_query

API_VERSIONS = (
    "2016-07-01.3.1", "2017-01-01.4.0", "2017-05-01.5.0", "2017-06-01.5.1", "2017-09-01.6.0",
    "2018-03-01.6.1", "2018-08-01.7.0", "2018-12-01.8.0", "2019-06-01.9.0", "2019-08-01.10.0",
    "2020-03-01.11.0", "2020-09-01.12.0", "2021-06-01.14.0", "2022-01-01.15.0", "2022-10-01.16.0",
    "2023-05-01.17.0", "2023-11-01.18.0", "2024-02-01.19.0", "2024-07-01.20.0", "2025-06-01",
)


def check(version: str | None, *, required: bool) -> None:
    if version is None:
        if required:
            raise BatchError("MissingRequiredQueryParameter", "A query parameter that's mandatory for this request "
                             "is not specified.", 400, {"QueryParameterName": "api-version"})
        return
    if version not in API_VERSIONS:
        raise invalid_query("api-version", version, f"not a supported api-version (newest: {API_VERSIONS[-1]})")
