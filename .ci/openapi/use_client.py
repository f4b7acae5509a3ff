"""Uses the Python client that openapi-python-client generated from openapi/openapi.json against
the running sandbox: PUT and PATCH of the demo user's photo, each by its own operation
(replaceMyPhoto, updateMyPhoto), raw bytes and multipart; then GET (getMyPhoto: the bytes Graph
holds, with an ETag; If-None-Match → 304) and DELETE (deleteMyPhoto: 204, then the GET is 404
photo-not-found). Asserts the receipts and that the Graph emulator received exactly what they say."""

import hashlib
import io
import json
import sys

import httpx

from photo_gateway_client import AuthenticatedClient, Client
from photo_gateway_client.api.health import healthz
from photo_gateway_client.api.photos import (
    delete_my_photo,
    get_my_photo,
    replace_my_photo,
    update_my_photo,
)
from photo_gateway_client.models import PhotoForm, Problem, UploadReceipt
from photo_gateway_client.types import File

ready = json.load(open(sys.argv[1]))
gateway, token = ready["gateway_url"], ready["token"]
photo = open(ready["sample_file"], "rb").read()
graph = httpx.Client(base_url=ready["graph_url"], verify=ready["ca_file"])


def last_graph_write():
    requests = graph.get("/_emulator/requests").json()
    assert requests, "the Graph emulator recorded no write"
    return requests[-1]


def check(receipt, method, request_id):
    assert isinstance(receipt, UploadReceipt), f"{method}: not a receipt: {receipt!r}"
    assert receipt.method == method, receipt
    assert receipt.target == "/me/photo/$value", receipt
    assert receipt.content_type == "image/jpeg", receipt
    assert receipt.client_request_id == request_id, receipt
    assert receipt.bytes_ > 0, receipt
    seen = last_graph_write()
    assert seen["method"] == method, seen
    assert seen["sha256"] == receipt.sha256, (seen, receipt)
    assert seen["bytes"] == receipt.bytes_, (seen, receipt)
    print(f"  {method}: 200, {receipt.bytes_} bytes, sha256 {receipt.sha256[:12]}…, as Graph received")


health = healthz.sync(client=Client(base_url=gateway))
assert health is not None and health.status == "ok", health

api = AuthenticatedClient(base_url=gateway, token=token, raise_on_unexpected_status=True)
graph.delete("/_emulator/requests")

put = replace_my_photo.sync(
    client=api,
    body=File(payload=io.BytesIO(photo), file_name="sample.jpg", mime_type="image/jpeg"),
    x_request_id="client-put-1",
)
check(put, "PUT", "client-put-1")
if put.sha256 == hashlib.sha256(photo).hexdigest():
    print("  (forwarded unchanged)")

patch = update_my_photo.sync(
    client=api,
    body=PhotoForm(photo=File(payload=io.BytesIO(photo), file_name="sample.jpg", mime_type="image/jpeg")),
    x_request_id="client-patch-1",
)
check(patch, "PATCH", "client-patch-1")

# GET: the bytes Graph holds now (the PATCH's), with an ETag; the same ETag back is 304.
got = get_my_photo.sync_detailed(client=api)
assert got.status_code == 200, got
assert hashlib.sha256(got.content).hexdigest() == patch.sha256, "GET answers what was set"
etag = got.headers.get("etag")
assert etag, got.headers
again = get_my_photo.sync_detailed(client=api, if_none_match=etag)
assert again.status_code == 304, again
print(f"  GET: 200, {len(got.content)} bytes, ETag {etag}; If-None-Match: 304")

# DELETE: 204, Graph no longer has it, and a read is 404 photo-not-found.
deleted = delete_my_photo.sync_detailed(client=api, x_request_id="client-delete-1")
assert deleted.status_code == 204, deleted
seen = last_graph_write()
assert seen["method"] == "DELETE" and seen["status"] == 204, seen
gone = get_my_photo.sync_detailed(client=Client(base_url=gateway, headers={"Authorization": f"Bearer {token}"}))
assert gone.status_code == 404, gone
assert json.loads(gone.content)["code"] == "photo-not-found", gone.content
print("  DELETE: 204; GET after it: 404 photo-not-found")

# Without a token: the documented problem, parsed by the client.
anonymous = Client(base_url=gateway, raise_on_unexpected_status=True)
denied = replace_my_photo.sync_detailed(
    client=anonymous,
    body=File(payload=io.BytesIO(photo), file_name="sample.jpg", mime_type="image/jpeg"),
)
assert denied.status_code == 401, denied
assert isinstance(denied.parsed, Problem) and denied.parsed.code, denied.parsed
print(f"  no token: 401 {denied.parsed.code}")
print("openapi client: PUT, PATCH, GET, DELETE and the 401 problem as documented")
