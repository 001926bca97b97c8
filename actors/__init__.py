"""pykka actors: one PoolActor per code pool, their registry and the asyncio bridge."""
