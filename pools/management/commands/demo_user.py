from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

from pools.groups import MANAGERS


class Command(BaseCommand):
    help = "Create the demo staff account of the zero-setup default (a promo manager) if missing."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="demo")
        parser.add_argument("--password", default="demo")
        parser.add_argument("--email", default="demo@example.com")
        parser.add_argument("--port", type=int, default=8000, help="the port `make run` serves on")

    def handle(self, *args, username, password, email, port, **options):
        user, created = get_user_model().objects.get_or_create(
            username=username, defaults={"email": email, "is_staff": True}
        )
        if created:
            user.set_password(password)
            user.save()
        user.groups.add(Group.objects.get(name=MANAGERS))
        login = f"{username} / {password}" if created else f"{username} (password unchanged)"
        self.stdout.write(
            self.style.SUCCESS(f"Log in at http://127.0.0.1:{port}/admin/ as {login}")
        )
