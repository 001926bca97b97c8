"""A channel sees and changes only its own subtree; everything else looks like nothing."""

from __future__ import annotations

import asyncio
import base64
import random
from typing import Any

import asyncpg

from tests.conftest import CREATE_CHANNEL, ISSUE_KEY, Api, Node

# Who is below whom in the `tree` fixture: root -> A -> A1 -> A11 and root -> B.
SUBTREE = {
    "root": {"root", "A", "A1", "A11", "B"},
    "A": {"A", "A1", "A11"},
    "A1": {"A1", "A11"},
    "A11": {"A11"},
    "B": {"B"},
}
OUTSIDE_A1 = ["B", "A", "root"]

CHANNEL = "query($id: ID) { channel(id: $id) { id name } }"

CREATE_USER = """
mutation($input: CreateUserInput!) {
  createUser(input: $input) {
    user { id }
    userErrors { field code message }
  }
}
"""

REVOKE_KEY = """
mutation($input: RevokeApiKeyInput!) {
  revokeApiKey(input: $input) {
    apiKey { id revokedAt }
    userErrors { field code message }
  }
}
"""

NO_SUCH_CHANNEL = "No such channel."


def not_found(field: str, message: str = NO_SUCH_CHANNEL) -> list[dict[str, Any]]:
    return [{"field": [field], "code": "NOT_FOUND", "message": message}]


def global_id(type_name: str, key: str) -> str:
    """An id as the server spells them (tests only: clients treat ids as opaque)."""
    return base64.b64encode(f"{type_name}:{key}".encode()).decode()


MISSING_CHANNEL = global_id("Channel", "987654321")


async def snapshot(db: asyncpg.Connection[Any]) -> list[Any]:
    """Every channel, user and key with its revocation: what a refused call must not change."""
    return [
        await db.fetch("SELECT id, parent_id, path::text FROM channels ORDER BY id"),
        await db.fetch("SELECT id, channel_id, email, role FROM users ORDER BY id"),
        await db.fetch("SELECT id, channel_id, role, revoked_at FROM api_keys ORDER BY id"),
    ]


async def mutate(
    api: Api, token: str, target: str, key_target: str
) -> dict[str, list[dict[str, Any]]]:
    """Each channel-naming mutation aimed at ``target`` (a channel id) / ``key_target``."""
    created = await api.data(
        CREATE_CHANNEL, {"input": {"name": "Intruder", "parentId": target}}, token=token
    )
    user = await api.data(
        CREATE_USER,
        {
            "input": {
                "email": "intruder@example.com",
                "password": "password 123",
                "role": "VERIFIER",
                "channelId": target,
            }
        },
        token=token,
    )
    issued = await api.data(
        ISSUE_KEY,
        {"input": {"channelId": target, "name": "intruder", "role": "VERIFIER"}},
        token=token,
    )
    revoked = await api.data(REVOKE_KEY, {"input": {"apiKeyId": key_target}}, token=token)
    assert created["createChannel"]["channel"] is None
    assert user["createUser"]["user"] is None
    assert issued["issueApiKey"]["secret"] is None
    assert issued["issueApiKey"]["apiKey"] is None
    assert revoked["revokeApiKey"]["apiKey"] is None
    return {
        "createChannel": created["createChannel"]["userErrors"],
        "createUser": user["createUser"]["userErrors"],
        "issueApiKey": issued["issueApiKey"]["userErrors"],
        "revokeApiKey": revoked["revokeApiKey"]["userErrors"],
    }


NOT_FOUND_ALL = {
    "createChannel": not_found("parentId"),
    "createUser": not_found("channelId"),
    "issueApiKey": not_found("channelId"),
    "revokeApiKey": not_found("apiKeyId", "No such API key."),
}


async def test_each_channel_sees_exactly_its_subtree(api: Api, tree: dict[str, Node]) -> None:
    # Given the tree root -> A -> A1 -> A11 and root -> B
    # When every channel asks for every channel by id
    for asker, node in tree.items():
        for target, other in tree.items():
            seen = await api.data(CHANNEL, {"id": other.id}, token=node.key)

            # Then it gets the channel when it is in its subtree, and null otherwise
            expected = {"id": other.id, "name": "Platform" if target == "root" else target}
            assert seen["channel"] == (expected if target in SUBTREE[asker] else None), (
                asker,
                target,
            )


async def test_a_channel_cannot_climb_out_through_nested_fields(
    api: Api, tree: dict[str, Node]
) -> None:
    # Given A1, which has a parent A and a grandparent, the platform
    # When A1 reads its own channel and A11's parent and path
    seen = await api.data(
        """query($id: ID) {
             own: channel { id parent { id } path { id } }
             child: channel(id: $id) { parent { id } path { name } }
             viewer { channel { parent { id } } }
           }""",
        {"id": tree["A11"].id},
        token=tree["A1"].key,
    )

    # Then nothing above A1 shows: its parent is null and paths start at A1
    assert seen == {
        "own": {"id": tree["A1"].id, "parent": None, "path": [{"id": tree["A1"].id}]},
        "child": {"parent": {"id": tree["A1"].id}, "path": [{"name": "A1"}, {"name": "A11"}]},
        "viewer": {"channel": {"parent": None}},
    }


async def test_outside_the_subtree_looks_like_nothing(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given A1's owner key, and the channels and keys outside its subtree
    before = await snapshot(db)

    for target in OUTSIDE_A1:
        # When A1 reads, grows, staffs, keys or revokes the keys of B, A or the platform
        seen = await api.data(CHANNEL, {"id": tree[target].id}, token=tree["A1"].key)
        errors = await mutate(api, tree["A1"].key, tree[target].id, tree[target].key_id)

        # Then every answer is NOT_FOUND (or null), never FORBIDDEN
        assert seen == {"channel": None}, target
        assert errors == NOT_FOUND_ALL, target

    # And the answers are the same as for a channel and a key that do not exist
    assert await mutate(api, tree["A1"].key, MISSING_CHANNEL, global_id("ApiKey", "987654321")) == (
        NOT_FOUND_ALL
    )

    # And nothing was created or revoked: the data is as it was, every key still works
    assert await snapshot(db) == before
    for node in tree.values():
        viewer = await api.data("{ viewer { channel { id } } }", token=node.key)
        assert viewer["viewer"]["channel"] == {"id": node.id}


async def test_low_roles_get_not_found_before_forbidden(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given a VERIFIER key of A1, which may manage nothing
    issued = await api.data(
        ISSUE_KEY,
        {"input": {"channelId": tree["A1"].id, "name": "checker", "role": "VERIFIER"}},
        token=tree["A1"].key,
    )
    verifier = issued["issueApiKey"]["secret"]
    before = await snapshot(db)

    # When it aims every channel-naming mutation outside its subtree
    # Then it learns only that there is no such thing, not that it lacks the role
    for target in OUTSIDE_A1:
        errors = await mutate(api, verifier, tree[target].id, tree[target].key_id)
        assert errors == NOT_FOUND_ALL, target

    # And inside its subtree the same calls are refused for its role
    inside = await mutate(api, verifier, tree["A11"].id, tree["A11"].key_id)
    assert {op: [(e["code"], e["message"]) for e in errs] for op, errs in inside.items()} == {
        "createChannel": [("FORBIDDEN", "Your role may not create channels.")],
        "createUser": [("FORBIDDEN", "Your role may not create users.")],
        "issueApiKey": [("FORBIDDEN", "Your role may not issue API keys.")],
        "revokeApiKey": [("FORBIDDEN", "Your role may not revoke API keys.")],
    }
    assert await snapshot(db) == before


async def test_a1_acts_inside_its_subtree(
    api: Api, tree: dict[str, Node], db: asyncpg.Connection[Any]
) -> None:
    # Given A1's owner key
    # When it grows A11, staffs it, keys it and revokes A11's key
    created = await api.data(
        CREATE_CHANNEL,
        {"input": {"name": "A111", "parentId": tree["A11"].id}},
        token=tree["A1"].key,
    )
    user = await api.data(
        CREATE_USER,
        {
            "input": {
                "email": "a11@example.com",
                "password": "password 123",
                "role": "VERIFIER",
                "channelId": tree["A11"].id,
            }
        },
        token=tree["A1"].key,
    )
    issued = await api.data(
        ISSUE_KEY,
        {"input": {"channelId": tree["A11"].id, "name": "till", "role": "VERIFIER"}},
        token=tree["A1"].key,
    )
    revoked = await api.data(
        REVOKE_KEY, {"input": {"apiKeyId": tree["A11"].key_id}}, token=tree["A1"].key
    )

    # Then each succeeds (the refusals above are about the subtree, not the calls)
    assert created["createChannel"]["userErrors"] == []
    assert created["createChannel"]["channel"]["level"] == 4
    assert user["createUser"]["userErrors"] == []
    assert issued["issueApiKey"]["userErrors"] == []
    assert revoked["revokeApiKey"]["userErrors"] == []
    assert revoked["revokeApiKey"]["apiKey"]["revokedAt"] is not None
    rows = await db.fetch("SELECT revoked_at FROM api_keys WHERE revoked_at IS NOT NULL")
    assert len(rows) == 1


async def test_ids_of_another_kind_or_garbage_are_not_found(
    api: Api, tree: dict[str, Node]
) -> None:
    # Given ids that are no channel's: another type's (even with the number of A11,
    # which A1 may see), made up, or not ids at all
    a11_number = base64.b64decode(tree["A11"].id).decode().rpartition(":")[2]
    bogus = [
        global_id("ApiKey", a11_number),
        global_id("User", a11_number),
        global_id("channel", a11_number),
        tree["A11"].key_id,
        global_id("Channel", "-1"),
        global_id("Channel", "1" * 19),
        global_id("Channel", ""),
        "not an id",
        "",
    ]
    for channel_id in bogus:
        # When A1 reads a channel or grows one below it
        seen = await api.data(CHANNEL, {"id": channel_id}, token=tree["A1"].key)
        created = await api.data(
            CREATE_CHANNEL, {"input": {"name": "x", "parentId": channel_id}}, token=tree["A1"].key
        )

        # Then it is not found
        assert seen == {"channel": None}, channel_id
        assert created["createChannel"] == {"channel": None, "userErrors": not_found("parentId")}


async def test_ids_with_non_ascii_digits_are_not_found(api: Api, tree: dict[str, Node]) -> None:
    # Given a Channel id whose number is a superscript digit
    channel_id = global_id("Channel", "²")

    # When A1 reads it or grows a channel below it
    seen = await api.raw(CHANNEL, {"id": channel_id}, token=tree["A1"].key)
    created = await api.raw(
        CREATE_CHANNEL, {"input": {"name": "x", "parentId": channel_id}}, token=tree["A1"].key
    )

    # Then it is not found, not an internal error
    assert seen == {"data": {"channel": None}}
    assert created == {
        "data": {"createChannel": {"channel": None, "userErrors": not_found("parentId")}}
    }


async def test_concurrent_callers_each_see_their_own_subtree(
    api: Api, tree: dict[str, Node]
) -> None:
    # Given five channels' keys and a fixed random plan of 40 lookups each,
    # of any channel of the tree or of one that does not exist
    rng = random.Random(20250301)
    targets = [*tree, "missing"]
    ids = {name: node.id for name, node in tree.items()} | {"missing": MISSING_CHANNEL}
    plan = [(asker, rng.choice(targets)) for asker in tree for _ in range(40)]
    rng.shuffle(plan)

    async def ask(asker: str, target: str) -> tuple[str, str, dict[str, Any]]:
        seen = await api.data(
            "query($id: ID) { viewer { channel { id } } channel(id: $id) { id } }",
            {"id": ids[target]},
            token=tree[asker].key,
        )
        return asker, target, seen

    # When they all ask at once over the same client
    answers = await asyncio.gather(*(ask(asker, target) for asker, target in plan))

    # Then every answer is the asker's own: its identity, and its subtree exactly
    wrong = [
        (asker, target, seen)
        for asker, target, seen in answers
        if seen
        != {
            "viewer": {"channel": {"id": tree[asker].id}},
            "channel": {"id": ids[target]} if target in SUBTREE[asker] else None,
        }
    ]
    assert wrong == []
    visible = sum(1 for asker, target in plan if target in SUBTREE[asker])
    assert 0 < visible < len(plan)
