"""Benchmark locustfile: GET / with no wait, FastHttpUser (Locust's fastest user)."""

from locust import FastHttpUser, constant, task


class Getter(FastHttpUser):
    wait_time = constant(0)

    @task
    def root(self):
        self.client.get("/")
