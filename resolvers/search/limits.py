"""How many hits a vector search returns at most: semanticSearch, Campaign.similar and
Agent.memories alike. Its own module so that the types declaring those fields can size them
(@listSize) without importing the search resolvers, which import the types."""

MAX_LIMIT = 50
