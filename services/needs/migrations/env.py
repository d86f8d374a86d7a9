from shared.migrations import run_env

from services.needs.models import Base

run_env(Base.metadata)
