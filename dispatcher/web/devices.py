"""Leaders' phones and browsers: a device registers (`POST /v1/devices`: a phone's FCM token,
or a browser's Web Push subscription, with the token it `replaces` if it was refreshed) and
signs out (`DELETE /v1/devices`); a web app reads the VAPID key it subscribes with
(`GET /v1/webpush/vapid`).

Registering and signing out take a device key (`devices:write`, bound to a leader). Which
token a registration retires is `dispatcher.devices`'s to decide; tokens are shown redacted.
"""

from __future__ import annotations

from typing import Annotated, Literal

from aiohttp import web
from pydantic import Field, field_validator

from dispatcher.devices import REFRESHED, registration
from dispatcher.intake import FieldError, Text, Wire
from dispatcher.notify.base import redact_token
from dispatcher.notify.webpush import WebPushChannel, check_auth, check_p256dh
from dispatcher.notify.webpush_endpoints import MAX_ENDPOINT
from dispatcher.web.auth import KEY, PUBLIC, requires, stored_id
from dispatcher.web.openapi import documented
from dispatcher.web.problems import ProblemError
from dispatcher.web.services import (
    CHANNELS,
    CLOCK,
    DEVICES,
    device_leader,
    json_response,
    read_body,
)

Token = Annotated[str, Field(min_length=20, max_length=4096, pattern=r"^[A-Za-z0-9_:.\-]+$")]


Endpoint = Annotated[Text, Field(min_length=12, max_length=MAX_ENDPOINT)]


class SubscriptionKeys(Wire):
    p256dh: str = Field(max_length=100)
    auth: str = Field(max_length=40)

    @field_validator("p256dh")
    @classmethod
    def _point(cls, value: str) -> str:
        check_p256dh(value)
        return value

    @field_validator("auth")
    @classmethod
    def _secret(cls, value: str) -> str:
        check_auth(value)
        return value


class SubscriptionIn(Wire):
    """A Web Push subscription, as the browser's `PushSubscription.toJSON()` gives it."""

    endpoint: Endpoint
    expirationTime: float | None = None  # the browser's own name
    keys: SubscriptionKeys


class DeviceIn(Wire):
    token: Token | None = None  # FCM's registration token (android, ios)
    platform: Literal["android", "ios", "web"]
    locale: Literal["ar", "en"] = "ar"
    # The token FCM refreshed, or the endpoint a browser replaced, if the app still has it.
    replaces: Annotated[Text, Field(min_length=20, max_length=4096)] | None = None
    subscription: SubscriptionIn | None = None  # platform "web"


class DeviceGone(Wire):
    token: Token | None = None
    endpoint: Endpoint | None = None  # a Web Push subscription's


@requires("devices:write")
@documented(
    "A phone signs out",
    body=DeviceGone,
    responses={204: "the phone no longer receives", 404: "no such phone for this leader"},
    tags=["devices"],
)
async def delete_device(request: web.Request) -> web.Response:
    """The phone signs out (or changes hands): stop pushing to this token."""
    leader = device_leader(request)
    gone = await read_body(request, DeviceGone, what="device")
    token = gone.token or gone.endpoint
    if token is None or (gone.token and gone.endpoint):
        wanted = FieldError("token", "give the token of a phone or the endpoint of a browser")
        raise ProblemError(422, "Invalid device", "nothing was changed", errors=[wanted])
    if not await request.app[DEVICES].remove_device(
        leader_id=leader, token=token, now=request.app[CLOCK](), reason="signed out"
    ):
        what = "token" if gone.token else "endpoint"
        raise ProblemError(404, "Not Found", f"no device with that {what} for this leader")
    return web.Response(status=204)


def _device_errors(device_in: DeviceIn, webpush: WebPushChannel | None) -> list[FieldError]:
    """What the fields say together: a phone has a token, a browser a subscription on a
    push service the service posts to."""
    if device_in.platform != "web":
        errors = []
        if device_in.token is None:
            errors.append(FieldError("token", "required field is missing"))
        if device_in.subscription is not None:
            errors.append(FieldError("subscription", "only for platform web"))
        return errors
    if device_in.subscription is None:
        need = "required for platform web: the object PushSubscription.toJSON() gives"
        return [FieldError("subscription", need)]
    if device_in.token is not None:
        return [FieldError("token", "not for platform web: send the subscription")]
    if webpush is None:
        return [FieldError("platform", "this service has no Web Push channel")]
    refused = webpush.endpoint_problem(device_in.subscription.endpoint)
    return [FieldError("subscription.endpoint", refused)] if refused else []


def _webpush(request: web.Request) -> WebPushChannel | None:
    channel = request.app[CHANNELS].get("webpush")
    return channel if isinstance(channel, WebPushChannel) else None


@requires(PUBLIC)
@documented(
    "The VAPID public key a web app subscribes with",
    responses={200: "{public_key}", 404: "no Web Push channel"},
    tags=["devices"],
)
async def webpush_vapid(request: web.Request) -> web.Response:
    """The VAPID public key a web app subscribes with (`applicationServerKey`)."""
    webpush = _webpush(request)
    if webpush is None:
        raise ProblemError(404, "Not Found", "this service has no Web Push channel")
    return json_response({"public_key": webpush.vapid.public_key})


@requires("devices:write")
@documented(
    "Register a phone (FCM token) or a browser (Web Push subscription) for the key's leader",
    body=DeviceIn,
    responses={200: "already registered", 201: "registered"},
    tags=["devices"],
)
async def post_device(request: web.Request) -> web.Response:
    devices, clock = request.app[DEVICES], request.app[CLOCK]
    leader = device_leader(request)
    device_in = await read_body(request, DeviceIn, what="device")
    errors = _device_errors(device_in, _webpush(request))
    if errors:
        raise ProblemError(422, "Invalid device", "nothing was stored", errors=errors)
    subscription = device_in.subscription
    token = subscription.endpoint if subscription is not None else device_in.token
    assert token is not None
    wanted = registration(token, device_in.replaces)
    if wanted.retire is not None:
        await devices.remove_device(
            leader_id=leader, token=wanted.retire, now=clock(), reason=REFRESHED
        )
    device, created = await devices.register_device(
        leader_id=leader,
        token=wanted.token,
        platform=device_in.platform,
        locale=device_in.locale,
        now=clock(),
        key_id=stored_id(request[KEY]),
        p256dh=subscription.keys.p256dh if subscription is not None else None,
        auth=subscription.keys.auth if subscription is not None else None,
    )
    return json_response(
        {
            "device": {
                "id": device.id,
                "leader": device.leader_id,
                "platform": device.platform,
                "locale": device.locale,
                "token": redact_token(device.token),
            }
        },
        status=201 if created else 200,
    )


def add_device_routes(app: web.Application) -> None:
    app.router.add_post("/v1/devices", post_device)
    app.router.add_delete("/v1/devices", delete_device)
    app.router.add_get("/v1/webpush/vapid", webpush_vapid)
