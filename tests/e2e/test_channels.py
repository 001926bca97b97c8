"""The channel tree through GraphQL: creating it and reading it from each level."""

from __future__ import annotations

from tests.conftest import CREATE_CHANNEL, Api, Node

CHANNEL = """
query($id: ID) {
  channel(id: $id) {
    id name level
    parent { id }
    path { name }
    children(first: 10) { edges { node { name } } pageInfo { hasNextPage } }
  }
}
"""


async def test_tree_reads_from_each_level(api: Api, tree: dict[str, Node]) -> None:
    # Given the tree root -> A -> A1 -> A11 and root -> B
    # When A looks at A11
    seen = await api.data(CHANNEL, {"id": tree["A11"].id}, token=tree["A"].key)

    # Then it sees its level, its parent and the path from A down
    channel = seen["channel"]
    assert channel["name"] == "A11"
    assert channel["level"] == 3
    assert channel["parent"] == {"id": tree["A1"].id}
    assert [c["name"] for c in channel["path"]] == ["A", "A1", "A11"]

    # And its own channel has no parent from where it stands
    own = await api.data(CHANNEL, {"id": None}, token=tree["A"].key)
    assert own["channel"]["parent"] is None
    assert [e["node"]["name"] for e in own["channel"]["children"]["edges"]] == ["A1"]


async def test_children_page_through_with_cursors(api: Api, tree: dict[str, Node]) -> None:
    # Given 5 children under B
    names = [f"store {i}" for i in range(5)]
    for name in names:
        await api.data(
            CREATE_CHANNEL, {"input": {"name": name, "parentId": tree["B"].id}}, token=tree["B"].key
        )

    # When B pages through them two at a time
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        page = await api.data(
            """query($after: String) { channel { children(first: 2, after: $after) {
                 edges { node { name } } pageInfo { hasNextPage endCursor } } } }""",
            {"after": after},
            token=tree["B"].key,
        )
        children = page["channel"]["children"]
        seen += [e["node"]["name"] for e in children["edges"]]
        pages += 1
        if not children["pageInfo"]["hasNextPage"]:
            break
        after = children["pageInfo"]["endCursor"]

    # Then every child comes once, in order, in three pages
    assert seen == names
    assert pages == 3


async def test_create_channel_refuses_bad_input_and_changes_nothing(
    api: Api, tree: dict[str, Node]
) -> None:
    # Given A with regions narrowed to Guangdong
    narrowed = await api.data(
        CREATE_CHANNEL,
        {"input": {"name": "GD agent", "regions": ["CN-GD"], "parentId": tree["A"].id}},
        token=tree["A"].key,
    )
    gd = narrowed["createChannel"]["channel"]["id"]

    # When a child asks for a blank name and a region outside its parent's
    refused = await api.data(
        CREATE_CHANNEL,
        {"input": {"name": "   ", "regions": ["CN-SH"], "parentId": gd}},
        token=tree["A"].key,
    )

    # Then both problems are reported, typed, and no channel was made
    assert refused["createChannel"] == {
        "channel": None,
        "userErrors": [
            {
                "field": ["name"],
                "code": "INVALID_INPUT",
                "message": "Give a name of 1 to 100 characters.",
            },
            {
                "field": ["regions"],
                "code": "REGION_NOT_ALLOWED",
                "message": "The parent does not sell to CN-SH.",
            },
        ],
    }
    children = await api.data(CHANNEL, {"id": gd}, token=tree["A"].key)
    assert children["channel"]["children"]["edges"] == []

    # And a child with no regions of its own inherits its parent's
    inherited = await api.data(
        """mutation($input: CreateChannelInput!) { createChannel(input: $input) {
             channel { regions } userErrors { code } } }""",
        {"input": {"name": "GD store", "parentId": gd}},
        token=tree["A"].key,
    )
    assert inherited["createChannel"]["channel"]["regions"] == ["CN-GD"]
