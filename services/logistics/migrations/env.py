from shared.migrations import run_env

from services.logistics.models import Base

run_env(Base.metadata)
