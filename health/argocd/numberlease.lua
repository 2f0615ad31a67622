-- Argo CD health check for contiguity.com/NumberLease (Argo CD runs it as Lua 5.1, with the live
-- object in `obj`). It reads the kstatus-style conditions the operator writes:
--   Healthy      Ready=True for the current generation (the lease is active);
--   Degraded     Stalled=True for the current generation (needs a human: bad token, number
--                claimed or not leasable, refused by Contiguity, invalid spec...);
--   Progressing  anything else (not yet observed, Reconciling, waiting), with the operator's message.
local hs = {}

local function condition(conditions, kind)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function describe(c)
  if c == nil then
    return ""
  end
  local text = c.message or ""
  if c.reason ~= nil and c.reason ~= "" then
    if text ~= "" then
      text = c.reason .. ": " .. text
    else
      text = c.reason
    end
  end
  return text
end

local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end
local status = obj.status
if status == nil or status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end

-- A condition speaks for the current spec only when its observedGeneration (or, without one,
-- status.observedGeneration) is the object's generation.
local function current(c)
  if generation == nil then
    return true
  end
  local seen = c.observedGeneration
  if seen == nil then
    seen = status.observedGeneration
  end
  return seen ~= nil and seen == generation
end

if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration ~= generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local ready = condition(status.conditions, "Ready")
local stalled = condition(status.conditions, "Stalled")
local reconciling = condition(status.conditions, "Reconciling")

if stalled ~= nil and stalled.status == "True" and current(stalled) then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end

if ready ~= nil and ready.status == "True" and current(ready) then
  hs.status = "Healthy"
  hs.message = describe(ready)
  return hs
end

hs.status = "Progressing"
if reconciling ~= nil and reconciling.status == "True" then
  hs.message = describe(reconciling)
elseif ready ~= nil then
  hs.message = describe(ready)
else
  hs.message = "Waiting for the Ready condition"
end
return hs
