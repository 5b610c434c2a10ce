"""The Arrow Flight service with the real ``pyarrow.flight`` client over a socket:
do_put in every mode, do_get with columns and filters, list_flights, get_flight_info,
actions, the errors clients get, read-only refusal, passwords and TLS."""

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.flight as flight
import pytest
from self_signed import self_signed_certificate

import colibri_mm as cm
from colibri_mm.database import Database
from colibri_mm.server.flight import FlightService

PEOPLE = pa.table({"id": pa.array([1, 2, 3], pa.int64()),
                   "name": ["ada", "bob", "cy"],
                   "score": [0.9, 0.4, 0.7]})


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    with cm.connect(tmp_path / "db", create=True) as database:
        yield database


def serve(db: Database, **options: object) -> FlightService:
    service = FlightService(db, "127.0.0.1", 0, **options)  # type: ignore[arg-type]
    service.start()
    return service


@pytest.fixture
def client(db: Database) -> Iterator[flight.FlightClient]:
    service = serve(db)
    try:
        with flight.connect(f"grpc://127.0.0.1:{service.port}") as connected:
            yield connected
    finally:
        service.shutdown()


def put(client: flight.FlightClient, descriptor: flight.FlightDescriptor,
        data: pa.Table, options: flight.FlightCallOptions | None = None) -> dict[str, object]:
    """do_put ``data``; the server's JSON report."""
    writer, metadata = client.do_put(descriptor, data.schema, options=options)
    with writer:
        writer.write_table(data)
        writer.done_writing()
        report: dict[str, object] = json.loads(metadata.read().to_pybytes())
    return report


def command(**fields: object) -> flight.FlightDescriptor:
    return flight.FlightDescriptor.for_command(json.dumps(fields))


def ticket(**fields: object) -> flight.Ticket:
    return flight.Ticket(json.dumps(fields))


def read(client: flight.FlightClient, table: str) -> pa.Table:
    return client.do_get(ticket(table=table)).read_all().sort_by("id")


def refusal(call: object, *args: object) -> flight.FlightError:
    """The Flight error ``call(*args)`` raises (reading a stream or an iterator of
    results to the end)."""
    with pytest.raises(flight.FlightError) as raised:
        result = call(*args)  # type: ignore[operator]
        if isinstance(result, flight.FlightStreamReader):
            result.read_all()
        elif isinstance(result, Iterator):
            list(result)
    return raised.value


def test_put_by_path_creates_the_table_and_list_flights_shows_it(
        client: flight.FlightClient, db: Database) -> None:
    report = put(client, flight.FlightDescriptor.for_path("people"), PEOPLE)
    assert report["table"] == "people" and report["rows"] == 3
    assert db.table("people").to_arrow_table().sort_by("id").equals(PEOPLE)
    [info] = client.list_flights()
    assert info.descriptor.path == [b"people"]
    assert info.schema.equals(PEOPLE.schema)
    assert info.total_records == 3
    assert client.do_get(info.endpoints[0].ticket).read_all().sort_by("id").equals(PEOPLE)


def test_put_modes_create_append_upsert_replace(client: flight.FlightClient) -> None:
    put(client, command(table="people", mode="create", primary_key=["id"]), PEOPLE)
    put(client, command(table="people", mode="append"),
        pa.table({"id": pa.array([4], pa.int64()), "name": ["dee"], "score": [0.1]}))
    assert read(client, "people")["id"].to_pylist() == [1, 2, 3, 4]
    put(client, command(table="people", mode="upsert"),
        pa.table({"id": pa.array([2, 5], pa.int64()), "name": ["bo", "eve"],
                  "score": [1.0, 0.5]}))
    people = read(client, "people")
    assert people["id"].to_pylist() == [1, 2, 3, 4, 5]
    assert people["name"].to_pylist() == ["ada", "bo", "cy", "dee", "eve"]
    replacement = pa.table({"id": pa.array([10], pa.int64()), "tag": ["new"]})
    put(client, command(table="people", mode="replace", primary_key="id"), replacement)
    assert read(client, "people").equals(replacement)


def test_get_with_columns_and_filter(client: flight.FlightClient) -> None:
    put(client, command(table="people", primary_key="id"), PEOPLE)
    rows = client.do_get(ticket(table="people", columns=["name", "score"],
                                filter="score > 0.5 and name != 'cy'")).read_all()
    expected = PEOPLE.filter((pc.field("score") > 0.5) & (pc.field("name") != "cy"))
    assert rows.equals(expected.select(["name", "score"]))


def test_flight_info_of_a_table_and_of_a_query(client: flight.FlightClient) -> None:
    put(client, command(table="people", primary_key="id"), PEOPLE)
    info = client.get_flight_info(flight.FlightDescriptor.for_path("people"))
    assert info.schema.equals(PEOPLE.schema) and info.total_records == 3
    query = command(table="people", columns=["name"], filter="id in (1, 3)")
    info = client.get_flight_info(query)
    assert info.schema.names == ["name"]
    assert info.total_records == -1  # filtered: not counted in advance
    [endpoint] = info.endpoints
    assert sorted(client.do_get(endpoint.ticket).read_all()["name"].to_pylist()) == \
        ["ada", "cy"]


def test_actions_checkpoint_and_stats(client: flight.FlightClient, db: Database) -> None:
    assert {a.type for a in client.list_actions()} == {"checkpoint", "stats"}
    db.kv.put(b"k", b"v")
    [result] = client.do_action(flight.Action("checkpoint", b""))
    report = json.loads(result.body.to_pybytes())
    assert report["checkpoint_id"] == db.stats()["checkpoint_id"]
    [result] = client.do_action(flight.Action("stats", b""))
    assert json.loads(result.body.to_pybytes())["published_csn"] == db.stats()["published_csn"]


@pytest.mark.parametrize(("request_", "kind", "words"), [
    (ticket(table="nobody"), b"TableNotFoundError", "nobody"),
    (flight.Ticket(b"{not json"), b"FlightRequestError", "not JSON"),
    (ticket(table="people", colour="red"), b"FlightRequestError", "'colour'"),
    (ticket(table="people", columns="name"), b"FlightRequestError", "columns"),
    (ticket(table="people", filter="score >"), b"WhereSyntaxError", "invalid syntax"),
    (ticket(table="people", filter="__import__('os')"), b"WhereSyntaxError",
     "unsupported"),
    (ticket(table="people", filter="age > 3"), b"WhereColumnError", "'age'"),
    (ticket(table="people", columns=["age"]), b"SchemaError", "'age'"),
])
def test_do_get_refusals_name_what_is_wrong(client: flight.FlightClient,
                                            request_: flight.Ticket, kind: bytes,
                                            words: str) -> None:
    put(client, command(table="people", primary_key="id"), PEOPLE)
    error = refusal(client.do_get, request_)
    assert isinstance(error, flight.FlightServerError)
    assert error.extra_info == kind
    assert words in str(error)


def test_put_and_info_refusals(client: flight.FlightClient) -> None:
    put(client, command(table="people", primary_key="id"), PEOPLE)
    error = refusal(client.get_flight_info, flight.FlightDescriptor.for_path("nobody"))
    assert error.extra_info == b"TableNotFoundError" and "nobody" in str(error)
    error = refusal(put, client, command(table="people", mode="merge"), PEOPLE)
    assert "mode" in str(error) and "merge" in str(error)
    error = refusal(put, client, command(table="people"), PEOPLE)  # create: exists
    assert "people" in str(error)
    error = refusal(put, client, command(table="dupes", primary_key="id"),
                    pa.table({"id": [1, 1]}))
    assert error.extra_info == b"ConstraintError"
    error = refusal(put, client, flight.FlightDescriptor.for_path("a", "b"), PEOPLE)
    assert error.extra_info == b"FlightRequestError" and "one table name" in str(error)
    error = refusal(client.do_action, flight.Action("vacuum", b""))
    assert "vacuum" in str(error) and "checkpoint" in str(error)
    # The service still serves after every refusal.
    assert [info.descriptor.path for info in client.list_flights()] == [[b"people"]]


def test_readonly_service_refuses_put_and_serves_reads(db: Database) -> None:
    db.import_arrow("people", PEOPLE, primary_key="id")
    service = serve(db, readonly=True)
    try:
        with flight.connect(f"grpc://127.0.0.1:{service.port}") as client:
            error = refusal(put, client, command(table="people", mode="append"), PEOPLE)
            assert isinstance(error, flight.FlightUnauthorizedError)
            assert "read-only" in str(error)
            assert read(client, "people").equals(PEOPLE)
    finally:
        service.shutdown()
    assert db.table("people").count() == 3


def test_calls_are_observed(db: Database) -> None:
    calls: list[tuple[str, str | None]] = []
    service = serve(db, observe_request=lambda command, seconds, error:
                    calls.append((command, error)))
    try:
        with flight.connect(f"grpc://127.0.0.1:{service.port}") as client:
            put(client, command(table="people", primary_key="id"), PEOPLE)
            read(client, "people")
            refusal(client.do_get, ticket(table="nobody"))
    finally:
        service.shutdown()
    assert calls == [("flight_do_put", None), ("flight_do_get", None),
                     ("flight_do_get", "TableNotFoundError")]


def test_password_is_required_as_basic_credentials_or_a_token(db: Database) -> None:
    db.import_arrow("people", PEOPLE, primary_key="id")
    service = serve(db, password_check=lambda password: password == "s3cret")
    try:
        with flight.connect(f"grpc://127.0.0.1:{service.port}") as client:
            error = refusal(client.list_flights)
            assert isinstance(error, flight.FlightUnauthenticatedError)
            assert isinstance(refusal(client.authenticate_basic_token, "me", "wrong"),
                              flight.FlightUnauthenticatedError)
            basic = (b"authorization", b"Basic " + base64.b64encode(b"anyone:s3cret"))
            options = flight.FlightCallOptions(headers=[basic])
            assert read_with(client, options).equals(PEOPLE)
            token = client.authenticate_basic_token("me", "s3cret")
            assert token[1].startswith(b"Bearer ")
            options = flight.FlightCallOptions(headers=[token])
            assert read_with(client, options).equals(PEOPLE)
            nonce = token[1].removeprefix(b"Bearer ").partition(b".")[0]
            forged = (b"authorization", b"Bearer " + nonce + b"." + b"0" * 64)
            error = refusal(client.list_flights, b"",
                            flight.FlightCallOptions(headers=[forged]))
            assert isinstance(error, flight.FlightUnauthenticatedError)
    finally:
        service.shutdown()


def read_with(client: flight.FlightClient, options: flight.FlightCallOptions) -> pa.Table:
    [info] = client.list_flights(options=options)
    return client.do_get(info.endpoints[0].ticket, options=options).read_all().sort_by("id")


def test_tls(db: Database, tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    db.import_arrow("people", PEOPLE, primary_key="id")
    service = FlightService(db, "127.0.0.1", 0, tls=(cert, key))
    service.start()
    try:
        with flight.connect(f"grpc+tls://localhost:{service.port}",
                            tls_root_certs=cert.read_bytes()) as client:
            assert read(client, "people").equals(PEOPLE)
    finally:
        service.shutdown()
