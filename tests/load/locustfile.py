"""The original plan's load profile (DESIGN.md section 11) for Locust.

Each simulated user authenticates once through POST /auth/token (API-key grant), then
picks tasks with weights vector search 10, graph find 5, ingest 3, vector upsert (10
points of 384 dimensions) 2, graph node create 1, waiting 1-3 s between them.
scripts/loadtest.sh prepares the server and sets the environment; to run it by hand:

    RAGBRAIN_API_KEY=... locust -f tests/load/locustfile.py --host http://127.0.0.1:8080

Settings (environment): RAGBRAIN_API_KEY (a key with read and write scopes),
RAGBRAIN_LOAD_COLLECTION (default "load"), RAGBRAIN_LOAD_DIM (384),
RAGBRAIN_LOAD_ENTITIES (1000: nodes "entity-0".. with label LoadEntity).
"""

import os
import random
import uuid

from locust import HttpUser, between, task

API_KEY = os.environ["RAGBRAIN_API_KEY"]
COLLECTION = os.environ.get("RAGBRAIN_LOAD_COLLECTION", "load")
DIM = int(os.environ.get("RAGBRAIN_LOAD_DIM", "384"))
ENTITIES = int(os.environ.get("RAGBRAIN_LOAD_ENTITIES", "1000"))
WORDS = ("graph vector retrieval fusion entity chunk index search latency "
         "throughput replica tenant document relation cluster").split()


def vector():
    return [random.uniform(-1.0, 1.0) for _ in range(DIM)]


class RagbrainUser(HttpUser):
    wait_time = between(1, 3)

    def on_start(self):
        r = self.client.post("/auth/token", json={"grant_type": "api_key", "api_key": API_KEY})
        r.raise_for_status()
        self.client.headers["Authorization"] = "Bearer " + r.json()["access_token"]

    @task(10)
    def vector_search(self):
        self.client.post("/vectors/search", name="search",
                         json={"collection": COLLECTION, "vector": vector(), "limit": 10})

    @task(5)
    def graph_find(self):
        name = "entity-%d" % random.randrange(ENTITIES)
        self.client.post("/graphs/node/find", name="find",
                         json={"label": "LoadEntity", "properties": {"name": name}, "limit": 10})

    @task(3)
    def ingest(self):
        text = " ".join(random.choice(WORDS).capitalize() if i % 7 == 0 else random.choice(WORDS)
                        for i in range(150))
        self.client.post("/ingest", name="ingest", json={"text": text, "metadata": {"source": "locust"}})

    @task(2)
    def upsert(self):
        points = [{"id": random.getrandbits(63), "vector": vector(), "payload": {"source": "locust"}}
                  for _ in range(10)]
        self.client.post("/vectors/upsert", name="upsert", json={"collection": COLLECTION, "points": points})

    @task(1)
    def node_create(self):
        self.client.post("/graphs/node", name="node",
                         json={"id": str(uuid.uuid4()), "labels": ["LoadNode"], "properties": {"source": "locust"}})
