"""Everyday dialogues with one-sentence summaries, written by this project for the fine-tuning demo.

DialogSum (the data set the Bedrock fine-tuning notebook uses) cannot ship with tuneforge, so the demo trains
on dialogues generated here in the same shape: speakers tagged ``#Person1#`` / ``#Person2#``, 4-10 turns, and a
summary of one third-person sentence that states the key fact ("#Person1# books a table for four at 8 pm.").

Each scenario family is a small function that draws slot values (names, numbers, items, places, times,
reasons) and phrasings (several templates per turn) through a ``_Picker``. The picker takes fixed choices
too, which is how ``SHOWCASE`` (the hotel check-in the demo asks both models to summarize) comes out of the
hotel family without ever being drawn by ``generate()``: its guest's surname is not in the name pool.

    python demo/dialogues.py 1000 /tmp/dialogues.jsonl   # writes prompt/completion lines, prints figures
"""

from __future__ import annotations

import json
import random
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

PROMPT_TEMPLATE = (
    "Summarize the simplest and most interesting part of the following conversation.\n\n{dialogue}\n\nSummary: "
)

FIRST_NAMES = [
    "Anna", "Ben", "Carla", "David", "Elena", "Frank", "Grace", "Hassan", "Irene", "Jack", "Keiko", "Leo",
    "Maria", "Nathan", "Olivia", "Pedro", "Quinn", "Rosa", "Samuel", "Tina", "Umar", "Vera", "Walter", "Yuki",
    "Zoe", "Daniel", "Priya", "Tom", "Lucy", "Marcus", "Nadia", "Oscar", "Helen", "Ivan", "Julia", "Kevin",
]
# "Sandals" is deliberately absent: the showcase guest never appears in generated training data.
SURNAMES = [
    "Parker", "Chen", "Okafor", "Novak", "Fischer", "Lopez", "Brennan", "Kowalski", "Haddad", "Lindqvist",
    "Moreau", "Tanaka", "Murphy", "Silva", "Rossi", "Patel", "Jensen", "Walsh", "Dubois", "Kim", "Adams",
    "Baker", "Carter", "Dawson", "Ellis", "Foster", "Grant", "Hughes", "Irwin", "Jordan", "Keller", "Lambert",
]
CITIES = [
    "Chicago", "Lisbon", "Toronto", "Madrid", "Denver", "Dublin", "Seattle", "Vienna", "Boston", "Oslo",
    "Melbourne", "Prague", "Atlanta", "Munich", "Montreal", "Edinburgh", "Singapore", "Phoenix",
]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
TIMES = ["9 am", "10 am", "11:30 am", "noon", "2 pm", "3:30 pm", "4 pm", "6 pm", "7 pm", "7:30 pm", "8 pm"]
FEMALE_NAMES = {"Anna", "Carla", "Elena", "Grace", "Irene", "Keiko", "Maria", "Olivia", "Rosa", "Tina", "Vera",
                "Yuki", "Zoe", "Priya", "Lucy", "Nadia", "Helen", "Julia"}
NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight"}


class _Picker:
    """Draws slot values and templates from a seeded RNG, unless the slot has a fixed value."""

    def __init__(self, rng: random.Random, fixed: dict[str, object] | None = None) -> None:
        self.rng = rng
        self.fixed = fixed or {}

    def one(self, key: str, options: Sequence):
        return self.fixed[key] if key in self.fixed else self.rng.choice(options)

    def num(self, key: str, low: int, high: int) -> int:
        return int(self.fixed[key]) if key in self.fixed else self.rng.randint(low, high)

    def chance(self, key: str, p: float) -> bool:
        return bool(self.fixed[key]) if key in self.fixed else self.rng.random() < p

    def name(self, key: str) -> tuple[str, str]:
        return self.one(key + ".first", FIRST_NAMES), self.one(key + ".last", SURNAMES)


Turns = list[str]  # speakers alternate, #Person1# first
Scenario = tuple[Turns, str]


_SENTENCE_START = re.compile(r"(^|[.!?] )([a-z])")


def _capitalize(text: str) -> str:
    """Slot values start in lower case ("an exchange"); a sentence that opens with one needs a capital."""
    return _SENTENCE_START.sub(lambda m: m.group(1) + m.group(2).upper(), text)


def _join(turns: Turns) -> str:
    return "\n".join(f"#Person{1 + i % 2}#: {_capitalize(text)}" for i, text in enumerate(turns))


def _fill(turns: Turns, summary: str, s: dict, anonymous: str | None = None) -> Scenario:
    """Formats the turns and the summary; a summary naming someone the dialogue never names falls back to
    ``anonymous`` (a summary states only what the conversation says)."""
    filled = [t.format(**s) for t in turns]
    text = " ".join(filled)
    if anonymous is not None and f"{s['first']} {s['last']}" not in text:
        summary = anonymous
    return filled, _capitalize(summary.format(**s))


# ---------------------------------------------------------------------------------------------- families


def hotel_check_in(p: _Picker) -> Scenario:
    first, last = p.name("guest")
    nights = p.num("nights", 1, 6)
    room = p.one("room", [f"{floor}{n:02d}" for floor in range(2, 9) for n in (3, 7, 11, 12, 15, 18)])
    refused = p.one("refused", ["American Express", "Diners Club", "a debit card from abroad", "a cheque"])
    accepted = p.one("accepted", ["MasterCard or VISA", "VISA or cash", "MasterCard, VISA or cash"])
    card = p.one("card", ["VISA", "MasterCard"])
    floor = {"2": "second", "3": "third", "4": "fourth", "5": "fifth", "6": "sixth", "7": "seventh",
             "8": "eighth"}[room[0]]
    kind = p.one("kind", ["single room", "double room", "twin room", "suite"])
    s = {"first": first, "last": last, "nights": NUMBER_WORDS[nights], "room": room, "refused": refused,
         "accepted": accepted, "card": card, "floor": floor, "kind": kind,
         "plural": "s" if nights > 1 else "", "title": "Ms." if first in FEMALE_NAMES else "Mr.",
         "sir": "madam" if first in FEMALE_NAMES else "sir"}
    turns = [
        p.one("t1", ["Good evening, welcome to our hotel. How can I help you?",
                     "Hello and welcome. Are you checking in?",
                     "Good afternoon. What can I do for you?"]),
        p.one("t2", ["Hi, I have a reservation under the name {first} {last}.",
                     "Yes, I'd like to check in. The booking is under {first} {last}.",
                     "Hello. I booked a room online last week. My name is {first} {last}."]),
        p.one("t3", ["Let me check. Yes, {title} {last}, a {kind} for {nights} night{plural}. "
                     "How would you like to pay?",
                     "Here it is, a {kind} for {nights} night{plural}. How will you be paying, {title} {last}?",
                     "I found it, {first} {last}, {nights} night{plural} in a {kind}. Could I have a card, please?"]),
        p.one("t4", ["Can I pay with {refused}?", "Would {refused} be all right?", "I'd like to use {refused}."]),
        p.one("t5", ["I'm sorry, we only accept {accepted}.",
                     "I'm afraid we can only take {accepted}.",
                     "Sorry, {sir}, we accept {accepted} only."]),
        p.one("t6", ["No problem. Here's my {card} card.", "Oh, all right. Then I'll use my {card}.",
                     "Fine, here is my {card} then."]),
        p.one("t7", ["Thank you. You're in room {room} on the {floor} floor. Here is your key.",
                     "Thank you, {sir}. Your room is {room}, on the {floor} floor. The lift is on your left.",
                     "All done. Room {room}, {floor} floor. Breakfast is from seven to ten."]),
    ]
    if p.chance("thanks", 0.7):
        turns.append(p.one("t8", ["Thanks very much.", "Great, thank you.", "Thank you. Good night."]))
    summary = p.one("summary", [
        "{first} {last} checks in at the hotel, pays by {card} because only {accepted} is accepted, "
        "and gets room {room}.",
        "{first} {last} checks in for {nights} night{plural} and pays by {card} instead of {refused}.",
        "#Person2# checks in as {first} {last}, pays with {card} and is given room {room}.",
    ])
    return _fill(turns, summary, s)


def restaurant_booking(p: _Picker) -> Scenario:
    first, last = p.name("caller")
    restaurant = p.one("restaurant", ["Olive Garden Terrace", "The Blue Anchor", "Casa Lupe", "Golden Lotus",
                                      "Bistro Lumiere", "The Copper Pot", "Sakura House", "Luigi's"])
    people = p.num("people", 2, 8)
    day = p.one("day", WEEKDAYS)
    asked = p.one("asked", ["7 pm", "7:30 pm", "8 pm", "8:30 pm"])
    got = p.one("got", ["6:30 pm", "9 pm", "9:15 pm", "6 pm"])
    full = p.chance("full", 0.5)
    request = p.one("request", ["a table by the window", "a quiet corner", "a high chair for a baby",
                                "a table on the terrace", "a vegetarian menu"])
    s = {"first": first, "last": last, "restaurant": restaurant, "n": NUMBER_WORDS[people], "day": day,
         "asked": asked, "got": got, "request": request}
    turns = [
        p.one("t1", ["{restaurant}, good evening. How may I help you?", "Thank you for calling {restaurant}.",
                     "Hello, {restaurant}. Can I help you?"]),
        p.one("t2", ["Hi, I'd like to book a table for {n} on {day} at {asked}.",
                     "Hello, do you have a table for {n} this {day} around {asked}?",
                     "I want to reserve a table for {n} people, {day} evening at {asked}."]),
    ]
    when = got if full else asked
    if full:
        turns += [p.one("t3", ["I'm sorry, we're fully booked at {asked}. Would {got} suit you?",
                               "{asked} is taken, I'm afraid. The closest I have is {got}."]),
                  p.one("t4", ["{got} is fine, I suppose.", "All right, let's make it {got}."])]
    turns += [p.one("t5", ["May I have your name, please?", "Under what name?", "Who is the booking for?"]),
              p.one("t6", ["{first} {last}. And could we have {request}?", "It's {last}, {first} {last}. "
                           "Is it possible to get {request}?"]),
              p.one("t7", ["Certainly, I've noted that. See you on {day}.", "I'll do my best. You're booked "
                           "under {last}.", "Of course. We'll see you then."])]
    if p.chance("bye", 0.6):
        turns.append(p.one("t8", ["Thank you, goodbye.", "Perfect, thanks."]))
    s["when"] = when
    summary = p.one("summary", [
        "{first} {last} books a table for {n} at {restaurant} on {day} at {when} and asks for {request}.",
        "#Person2# reserves a table for {n} at {when} on {day}" + (" because {asked} is fully booked." if full
                                                                   else "."),
    ])
    return _fill(turns, summary, s)


def doctor_appointment(p: _Picker) -> Scenario:
    first, last = p.name("patient")
    doctor = p.one("doctor", SURNAMES)
    symptom = p.one("symptom", ["a sore throat", "a bad cough", "pain in my lower back", "headaches every morning",
                                "a rash on my arm", "trouble sleeping", "a twisted ankle", "an earache"])
    days = p.one("days", ["two days", "a week", "about ten days", "four days", "three weeks"])
    day = p.one("day", WEEKDAYS[:5])
    time = p.one("time", TIMES[:7])
    s = {"first": first, "last": last, "doctor": doctor, "symptom": symptom, "days": days, "day": day,
         "time": time, "short": symptom.replace("my ", "the ")}
    turns = [
        p.one("t1", ["Good morning, Dr. {doctor}'s office.", "Riverside Clinic, reception speaking.",
                     "Hello, medical centre. How can I help?"]),
        p.one("t2", ["Hello, I'd like to make an appointment. I've had {symptom} for {days}.",
                     "Hi, I need to see a doctor. I've got {symptom}, and it's been {days}.",
                     "Good morning. Could I see Dr. {doctor}? I've had {symptom} for {days}."]),
        *p.one("t3", [("Is it an emergency, or can it wait a day or two?",
                       "It's not an emergency, but it's getting worse."),
                      ("Do you have a fever as well?", "No, just that. But it's annoying."),
                      ("I see. Have you been here before?", "Yes, I'm a patient here. My name is {first} {last}.")]),
        p.one("t5", ["Dr. {doctor} can see you on {day} at {time}.", "The first free slot is {day} at {time}.",
                     "I can fit you in on {day} at {time} with Dr. {doctor}."]),
        p.one("t6", ["{day} at {time} is fine.", "That works for me. Thank you.", "Great, I'll take it."]),
    ]
    if p.chance("card", 0.6):
        turns += [p.one("t7", ["Please bring your insurance card and arrive ten minutes early.",
                               "Remember to bring any medicine you are taking."]),
                  p.one("t8", ["I will. Thanks.", "OK, see you then."])]
    summary = p.one("summary", [
        "{first} {last} has had {short} for {days} and books an appointment with Dr. {doctor} on {day} at {time}.",
        "#Person2# makes a doctor's appointment for {day} at {time} because of {short}.",
    ])
    return _fill(turns, summary, s, "#Person2# has had {short} for {days} and will see the doctor on {day} at {time}.")


def job_interview(p: _Picker) -> Scenario:
    first, last = p.name("candidate")
    job = p.one("job", ["sales assistant", "junior accountant", "web developer", "nurse", "chef",
                        "marketing coordinator", "warehouse supervisor", "English teacher", "receptionist"])
    years = p.num("years", 1, 9)
    previous = p.one("previous", ["a small bakery", "a bank in " + p.one("city", CITIES), "a software start-up",
                                  "the city hospital", "a hotel chain", "a language school"])
    strength, strength3 = p.one("strength", [("I stay calm under pressure", "stays calm under pressure"),
                                             ("I'm good with numbers", "is good with numbers"),
                                             ("I learn quickly", "learns quickly"),
                                             ("I like working with people", "likes working with people"),
                                             ("I'm very organised", "is very organised")])
    reason = p.one("reason", ["I want more responsibility", "my old company moved abroad",
                              "I'd like to work closer to home", "I want to grow in a bigger team"])
    s = {"first": first, "last": last, "job": job, "years": years, "previous": previous, "strength": strength,
         "reason": reason, "strength3": strength3, "ys": "year" if years == 1 else "years"}
    turns = [
        p.one("t1", ["Please sit down, {first}. Thank you for coming in for the {job} position.",
                     "Good morning, {first} {last}. Let's talk about the {job} job.",
                     "Hello, {first}. Tell me a little about yourself."]),
        p.one("t2", ["Thank you. I've worked for {years} {ys} at {previous}.",
                     "Sure. I spent the last {years} {ys} at {previous}.",
                     "I'm {first} {last}, and I've been at {previous} for {years} {ys}."]),
        p.one("t3", ["Why do you want to leave?", "What makes you want to change jobs?",
                     "Why are you interested in this job?"]),
        p.one("t4", ["Honestly, {reason}.", "Mainly because {reason}.", "Well, {reason}."]),
        p.one("t5", ["What would you say is your greatest strength?", "Why should we choose you?",
                     "What can you bring to our team?"]),
        p.one("t6", ["I think {strength}.", "People tell me {strength}.", "{strength}, and I'm reliable."]),
    ]
    outcome = p.one("outcome", ["next week", "by Friday", "within two weeks"])
    s["outcome"] = outcome
    turns += [p.one("t7", ["Thank you. We'll let you know {outcome}.", "Good. You'll hear from us {outcome}."]),
              p.one("t8", ["Thank you for your time.", "I look forward to it."])]
    summary = p.one("summary", [
        "{first} {last} interviews for a {job} job after {years} {ys} at {previous} and will hear back {outcome}.",
        "#Person2# has a job interview for the {job} position and says #Person2# {strength3}.",
    ])
    return _fill(turns, summary, s, "#Person2# interviews for a {job} job after {years} {ys} at {previous}.")


def returning_purchase(p: _Picker) -> Scenario:
    item = p.one("item", ["a pair of boots", "a blue sweater", "a coffee machine", "a phone case", "a lamp",
                          "a winter jacket", "a pair of headphones", "a toaster", "a backpack",
                          "a pair of running shoes"])
    problem = p.one("problem", ["it's the wrong size", "it stopped working after two days", "the zip is broken",
                                "the colour is different from the picture", "it was a gift I don't need",
                                "there's a scratch on it"])
    days = p.num("days", 2, 25)
    receipt = p.chance("receipt", 0.75)
    refund = p.one("refund", ["a refund", "an exchange", "store credit"])
    s = {"item": item, "problem": problem, "days": days, "refund": refund}
    turns = [
        p.one("t1", ["Hi, how can I help you?", "Next, please. What can I do for you?", "Hello, returns desk."]),
        p.one("t2", ["I bought {item} here {days} days ago, but {problem}.",
                     "I'd like to return {item}. I bought it {days} days ago and {problem}.",
                     "Hello, I want to bring back {item} because {problem}."]),
        p.one("t3", ["Do you have the receipt?", "Have you got your receipt with you?", "Could I see the receipt?"]),
    ]
    if receipt:
        turns += [p.one("t4", ["Yes, here it is.", "Yes, it's right here.", "Here you are."]),
                  p.one("t5", ["Thank you. Would you like {refund}?", "Fine. I can offer you {refund}.",
                               "That's within our 30 days, so {refund} is no problem."]),
                  p.one("t6", ["Yes, {refund}, please.", "{refund} would be great.", "OK, that's fine."])]
        summary = "#Person2# returns {item} bought {days} days ago because {problem2} and gets {refund}."
    else:
        turns += [p.one("t4", ["I'm afraid I lost it.", "No, I threw it away, sorry.", "I can't find it."]),
                  p.one("t5", ["Without a receipt I can only give you store credit.",
                               "Then I can offer store credit, not a cash refund."]),
                  p.one("t6", ["I guess store credit is better than nothing.", "All right, store credit then."])]
        summary = "#Person2# returns {item} without a receipt and gets store credit instead of a refund."
    s["problem2"] = problem.replace("I don't", "#Person2# doesn't").replace("it's", "it is")
    return _fill(turns, summary, s)


def asking_directions(p: _Picker) -> Scenario:
    place = p.one("place", ["the train station", "the post office", "the city museum", "the nearest pharmacy",
                            "the central library", "the bus terminal", "the town hall", "the river market"])
    street = p.one("street", ["Park Street", "Elm Avenue", "King Road", "Harbour Lane", "Mill Street",
                              "Queen's Way", "Station Road"])
    blocks = p.num("blocks", 1, 5)
    side = p.one("side", ["left", "right"])
    landmark = p.one("landmark", ["a big church", "a petrol station", "a supermarket", "a red bank building",
                                  "a small park", "the cinema"])
    minutes = p.one("minutes", ["five", "ten", "fifteen", "twenty"])
    s = {"place": place, "street": street, "blocks": NUMBER_WORDS[blocks], "side": side, "landmark": landmark,
         "minutes": minutes, "bs": "block" if blocks == 1 else "blocks"}
    turns = [
        p.one("t1", ["Excuse me, could you tell me how to get to {place}?",
                     "Sorry to bother you. Do you know where {place} is?",
                     "Excuse me, I'm lost. I'm looking for {place}."]),
        p.one("t2", ["Sure. Go straight along {street} for {blocks} {bs}.",
                     "Yes. Walk down {street} for about {blocks} {bs}.",
                     "Of course. Follow {street} for {blocks} {bs}."]),
        p.one("t3", ["And then?", "OK, {blocks} {bs}. Then what?", "Straight on {street}, got it."]),
        p.one("t4", ["Turn {side} at {landmark}, and you'll see it.",
                     "When you see {landmark}, turn {side}. It's right there.",
                     "Then turn {side} after {landmark}."]),
        p.one("t5", ["Is it far to walk?", "How long does it take on foot?", "Can I walk there?"]),
        p.one("t6", ["Not far, about {minutes} minutes.", "It's only {minutes} minutes on foot.",
                     "About {minutes} minutes if you walk quickly."]),
    ]
    if p.chance("bye", 0.7):
        turns += [p.one("t7", ["Thank you so much.", "Thanks, that's very kind."]),
                  p.one("t8", ["You're welcome.", "No problem. Enjoy your day."])]
    summary = p.one("summary", [
        "#Person2# tells #Person1# how to get to {place}, which is {minutes} minutes away on foot.",
        "#Person1# asks the way to {place} and is told to follow {street} and turn {side} at {landmark}.",
    ])
    return _fill(turns, summary, s)


def renting_flat(p: _Picker) -> Scenario:
    first, last = p.name("tenant")
    rooms = p.one("rooms", ["a one-bedroom flat", "a studio", "a two-bedroom flat", "a flat with a balcony"])
    area = p.one("area", ["near the university", "in the city centre", "by the river", "close to the station",
                          "in a quiet street"])
    rent = p.one("rent", [str(x) for x in range(650, 1900, 75)])
    deposit = p.one("deposit", ["one month's rent", "two months' rent", "a 500-dollar deposit"])
    catch = p.one("catch", ["no pets are allowed", "heating is not included", "the lease is for twelve months",
                            "there's no lift", "parking costs extra"])
    day = p.one("day", WEEKDAYS)
    s = {"first": first, "last": last, "rooms": rooms, "area": area, "rent": rent, "deposit": deposit,
         "catch": catch, "day": day}
    turns = [
        p.one("t1", ["Hello, I'm calling about the ad for {rooms} {area}.",
                     "Hi, is {rooms} {area} still available?",
                     "Good morning. I saw your advert for {rooms} {area}."]),
        p.one("t2", ["Yes, it's still free. The rent is {rent} dollars a month.",
                     "Yes, it's still available. It's {rent} a month plus bills.",
                     "Yes. It costs {rent} dollars a month."]),
        p.one("t3", ["Is there a deposit?", "How much is the deposit?", "Do you need a deposit?"]),
        p.one("t4", ["It's {deposit}. I should also say that {catch}.",
                     "{deposit}. And just so you know, {catch}."]),
        p.one("t5", ["That's OK for me. Can I come and see it?", "Fine. When could I look at it?",
                     "I understand. Could I visit it this week?"]),
        p.one("t6", ["How about {day} afternoon?", "Come on {day} at 5. What's your name?",
                     "{day} works. May I have your name?"]),
        p.one("t7", ["Great, I'm {first} {last}. See you on {day}.", "{first} {last}. {day} is perfect."]),
    ]
    summary = p.one("summary", [
        "{first} {last} calls about {rooms} {area} for {rent} dollars a month and arranges a visit on {day}.",
        "#Person1# will see {rooms} on {day}, although {catch}.",
    ])
    return _fill(turns, summary, s)


def bank_account(p: _Picker) -> Scenario:
    first, last = p.name("customer")
    account = p.one("account", ["a current account", "a savings account", "a student account",
                                "a joint account", "a business account"])
    docs = p.one("docs", ["your passport and a utility bill", "an ID card and proof of address",
                          "your driving licence and a recent bank statement"])
    deposit = p.one("deposit", ["50", "100", "200", "500", "1,000"])
    rate = p.one("rate", ["1.5", "2", "2.25", "3", "3.1"])
    card_days = p.one("card_days", ["five", "seven", "ten"])
    s = {"first": first, "last": last, "account": account, "docs": docs, "deposit": deposit, "rate": rate,
         "card_days": card_days}
    turns = [
        p.one("t1", ["Good morning. How can I help you today?", "Hello, what can I do for you?"]),
        p.one("t2", ["I'd like to open {account}.", "Hi, I want to open {account}, please.",
                     "I'm thinking of opening {account} with you."]),
        p.one("t3", ["Certainly. I'll need {docs}.", "Of course. Do you have {docs} with you?"]),
        p.one("t4", ["Yes, here they are.", "I brought both.", "Here you are."]),
        p.one("t5", ["Thank you, {first}. The minimum first deposit is {deposit} dollars.",
                     "Great. You'll need to pay in at least {deposit} dollars to start."]),
        p.one("t6", ["That's fine. What interest rate do you offer?", "OK. Is there any interest?"]),
        p.one("t7", ["It's {rate} percent a year at the moment.", "Currently {rate} percent."]),
    ]
    if p.chance("card", 0.7):
        turns += [p.one("t8", ["When will I get my card?", "And the bank card?"]),
                  p.one("t9", ["It will arrive by post in {card_days} working days.",
                               "Your card should reach you within {card_days} days."])]
    summary = p.one("summary", [
        "{first} {last} opens {account} with a first deposit of {deposit} dollars at {rate} percent interest.",
        "#Person2# opens {account} at the bank after showing {docs2}.",
    ])
    s["docs2"] = docs.replace("your ", "a ")
    return _fill(turns, summary, s, "#Person2# opens {account} with a first deposit of {deposit} dollars.")


def airport_check_in(p: _Picker) -> Scenario:
    city = p.one("city", CITIES)
    bags = p.num("bags", 1, 3)
    weight = p.num("weight", 18, 29)
    limit = p.one("limit", [20, 23])
    seat = p.one("seat", ["a window seat", "an aisle seat", "a seat near the front", "an exit-row seat"])
    gate = p.one("gate", [f"{letter}{n}" for letter in "ABCD" for n in (4, 9, 12, 17, 21)])
    board = p.one("board", ["10:15", "11:40", "14:05", "16:30", "19:50", "21:10"])
    s = {"city": city, "bags": NUMBER_WORDS[bags], "weight": weight, "limit": limit, "seat": seat, "gate": gate,
         "board": board, "bs": "bag" if bags == 1 else "bags", "over": weight - limit}
    turns = [
        p.one("t1", ["Good morning. Where are you flying today?", "Hello. Passport and ticket, please.",
                     "Next, please. Your destination?"]),
        p.one("t2", ["To {city}. Here's my passport.", "I'm flying to {city}.",
                     "Here you are. It's the {city} flight."]),
        p.one("t3", ["How many bags are you checking in?", "Any bags to check?", "Do you have luggage to check?"]),
        p.one("t4", ["Just {bags} {bs}.", "{bags} {bs}.", "I have {bags} {bs}."]),
    ]
    overweight = weight > limit
    if overweight:
        turns += [p.one("t5", ["Your suitcase is {weight} kilos, {over} over the {limit}-kilo limit. There's a fee.",
                               "I'm afraid it weighs {weight} kilos. The limit is {limit}, so you'll pay extra."]),
                  p.one("t6", ["Oh no. Can I move some things to my hand luggage?",
                               "Fine, I'll pay the fee."])]
    turns += [p.one("t7", ["Would you like a window or an aisle seat?", "Any seat preference?"]),
              p.one("t8", ["I'd like {seat}, please.", "{seat} if possible."]),
              p.one("t9", ["Here's your boarding pass. Gate {gate}, boarding at {board}.",
                           "All set. You board at {board} from gate {gate}."])]
    summary = (
        "#Person2# checks in for the flight to {city}, has a bag {over} kilos over the limit, "
        "and boards at gate {gate}."
        if overweight else p.one("summary", [
            "#Person2# checks in {bags} {bs} for the flight to {city} and gets {seat} and gate {gate}.",
            "#Person2# checks in for {city} and will board at {board} from gate {gate}."]))
    return _fill(turns, summary, s)


def car_repair(p: _Picker) -> Scenario:
    first, last = p.name("owner")
    car = p.one("car", ["Toyota", "Ford", "Volkswagen", "Honda", "Renault", "Hyundai", "Subaru", "Skoda"])
    problem, cause = p.one("problem", [
        ("the brakes squeak", "worn brake pads"), ("the brakes squeak", "a stone stuck in the brake disc"),
        ("the engine makes a strange noise", "a loose belt"), ("the engine makes a strange noise", "a worn exhaust"),
        ("the battery keeps going flat", "an old battery"), ("the battery keeps going flat", "a faulty alternator"),
        ("a warning light came on", "a faulty sensor"), ("a warning light came on", "low oil pressure"),
        ("the air conditioning doesn't work", "a leaking air conditioning pipe"),
        ("the car pulls to the left", "badly aligned tyres"), ("the car pulls to the left", "a soft front tyre")])
    cost = p.one("cost", ["90", "150", "220", "340", "480", "75"])
    ready = p.one("ready", ["this afternoon", "tomorrow morning", "on Thursday", "by 5 pm"])
    s = {"first": first, "last": last, "car": car, "problem": problem, "cause": cause, "cost": cost,
         "ready": ready}
    turns = [
        p.one("t1", ["Hi, what seems to be the problem with your car?", "Morning. What can we do for you?"]),
        p.one("t2", ["My {car} has a problem: {problem}.", "It's my {car}. Since last week {problem}.",
                     "Hello, {problem} on my {car}."]),
        p.one("t3", ["Let me have a look. ... It's {cause}.", "I checked it. The problem is {cause}."]),
        p.one("t4", ["How much will it cost to fix?", "Is it expensive?", "What will that cost me?"]),
        p.one("t5", ["About {cost} dollars, parts and labour.", "Around {cost} dollars in total."]),
        p.one("t6", ["And when will it be ready?", "OK. How long will it take?"]),
        p.one("t7", ["You can pick it up {ready}.", "It will be ready {ready}."]),
    ]
    if p.chance("ok", 0.7):
        turns.append(p.one("t8", ["Fine, go ahead. The name is {first} {last}.", "OK, please fix it."]))
    summary = p.one("summary", [
        "#Person2#'s {car} has {cause}, and the repair costs about {cost} dollars and will be ready {ready}.",
        "The mechanic finds that {problem2} because of {cause} and quotes {cost} dollars.",
    ])
    s["problem2"] = problem
    return _fill(turns, summary, s)


def ordering_food(p: _Picker) -> Scenario:
    dish = p.one("dish", ["a large pepperoni pizza", "two chicken curries", "a vegetable lasagne",
                          "three beef burgers", "a family bucket of fried chicken", "sushi for two",
                          "a mushroom risotto", "pad thai with tofu"])
    extra = p.one("extra", ["garlic bread", "a bottle of cola", "a green salad", "chips", "spring rolls",
                            "extra sauce"])
    street = p.one("street", ["14 Oak Street", "7 Bridge Road", "221 Lake Avenue", "35 Hill Crescent",
                              "9 Market Square"])
    minutes = p.one("minutes", ["20", "30", "40", "45"])
    total = p.one("total", ["18.50", "24", "31.90", "27.40", "36"])
    pay = p.one("pay", ["cash", "card"])
    s = {"dish": dish, "extra": extra, "street": street, "minutes": minutes, "total": total, "pay": pay}
    turns = [
        p.one("t1", ["Hello, Mario's Kitchen. Pickup or delivery?", "Hi, thanks for calling. What can I get you?",
                     "Good evening, takeaway orders. Go ahead."]),
        p.one("t2", ["Delivery, please. I'd like {dish}.", "I want to order {dish} for delivery.",
                     "Can I get {dish}, delivered?"]),
        p.one("t3", ["Anything else?", "Would you like anything with that?", "Any sides or drinks?"]),
        p.one("t4", ["Yes, {extra} too.", "Add {extra}, please.", "Just {extra}."]),
        p.one("t5", ["What's the address?", "Where should we deliver it?"]),
        p.one("t6", ["{street}.", "It's {street}, the second floor."]),
        p.one("t7", ["That's {total} dollars. It'll be there in about {minutes} minutes.",
                     "Your total is {total}. Delivery takes {minutes} minutes."]),
        p.one("t8", ["Great. I'll pay by {pay} at the door.", "OK, I'll pay the driver by {pay}."]),
    ]
    summary = p.one("summary", [
        "#Person2# orders {dish} and {extra} to {street} for {total} dollars, to be delivered in {minutes} minutes.",
        "#Person2# orders {dish} for delivery and will pay by {pay}.",
    ])
    return _fill(turns, summary, s)


def library(p: _Picker) -> Scenario:
    first, last = p.name("reader")
    book = p.one("book", ["a history of the Roman Empire", "the new novel by Maria Duarte",
                          "a beginner's guide to photography", "a book on bird watching",
                          "the cookbook from the display", "a biography of a famous chess player"])
    weeks = p.one("weeks", ["two", "three", "four"])
    late = p.chance("late", 0.4)
    fine = p.one("fine", ["1.20", "2", "3.50", "0.80"])
    s = {"first": first, "last": last, "book": book, "weeks": weeks, "fine": fine}
    turns = [
        p.one("t1", ["Hi, can I help you?", "Good afternoon. Borrowing or returning?"]),
        p.one("t2", ["I'd like to borrow {book}.", "Hello, I want to take out {book}.",
                     "I found {book} and want to borrow it."]),
        p.one("t3", ["Sure. Your library card, please?", "Of course. Do you have a library card?"]),
    ]
    if late:
        turns += [p.one("t4", ["Here it is.", "Yes, here."]),
                  p.one("t5", ["There's a late fee of {fine} dollars from your last loan.",
                               "I see you returned a book late. There's a fine of {fine}."]),
                  p.one("t6", ["Oh, sorry. I'll pay it now.", "I forgot about that. Here you go."])]
        summary = "#Person2# pays a late fee of {fine} dollars and borrows {book} for {weeks} weeks."
    else:
        turns += [p.one("t4", ["No, I'm new here.", "I don't have one yet."]),
                  p.one("t5", ["Then please fill in this form. It's free.", "We can make you one now. Your name?"]),
                  p.one("t6", ["{first} {last}. Thanks.", "Sure, it's {first} {last}."])]
        summary = "{first} {last} gets a library card and borrows {book} for {weeks} weeks."
    turns += [p.one("t7", ["You can keep it for {weeks} weeks.", "It's due back in {weeks} weeks."]),
              p.one("t8", ["Can I renew it online?", "Thank you very much."])]
    return _fill(turns, summary, s)


def gym_membership(p: _Picker) -> Scenario:
    first, last = p.name("member")
    plan = p.one("plan", ["monthly", "annual", "off-peak", "student", "family"])
    price = p.one("price", ["25", "35", "39", "45", "55", "29"])
    classes = p.one("classes", ["yoga", "spinning", "boxing", "swimming", "pilates", "weight training"])
    joining = p.one("joining", ["no joining fee this month", "a 20-dollar joining fee", "a free first week"])
    s = {"first": first, "last": last, "plan": plan, "price": price, "classes": classes, "joining": joining,
         "a_plan": ("an " if plan[0] in "aeiou" else "a ") + plan}
    turns = [
        p.one("t1", ["Hi there, welcome to FitZone. Interested in joining?", "Hello, how can I help?"]),
        p.one("t2", ["Yes, how much is a membership?", "I'd like some information about memberships.",
                     "I'm thinking of joining. What are the prices?"]),
        p.one("t3", ["The {plan} plan is {price} dollars a month.", "Our {plan} membership costs {price} a month."]),
        p.one("t4", ["Does that include classes? I really want to do {classes}.",
                     "Are {classes} classes included?"]),
        p.one("t5", ["Yes, {classes} is included, and there's {joining}.",
                     "Yes, {classes} is part of the plan. And right now there's {joining}."]),
        p.one("t6", ["Sounds good. I'll sign up.", "Great, let's do it.", "OK, I'll join today."]),
    ]
    if p.chance("name", 0.6):
        turns += [p.one("t7", ["Perfect. Can I have your full name?", "Lovely. Your name, please?"]),
                  p.one("t8", ["{first} {last}.", "It's {first} {last}."])]
    summary = p.one("summary", [
        "#Person2# joins the gym on the {plan} plan for {price} dollars a month, which includes {classes}.",
        "{first} {last} signs up for {a_plan} gym membership to do {classes}.",
    ])
    return _fill(turns, summary, s, "#Person2# joins the gym on the {plan} plan for {price} dollars a month.")


def phone_plan(p: _Picker) -> Scenario:
    data = p.one("data", ["5", "10", "20", "50", "unlimited"])
    price = p.one("price", ["12", "15", "20", "30", "40"])
    complaint = p.one("complaint", ["my bills are too high", "I always run out of data", "I travel abroad a lot",
                                    "my contract ends next month", "the signal is bad at home"])
    months = p.one("months", ["12", "18", "24"])
    phone, phone_me = p.one("phone", [("keep your phone", "keep my phone"), ("get a new phone", "get a new phone"),
                                      ("switch to a SIM-only deal", "switch to a SIM-only deal")])
    s = {"data": data, "price": price, "complaint": complaint, "months": months, "phone": phone, "phone_me": phone_me,
         "gb": "unlimited data" if data == "unlimited" else data + " gigabytes of data"}
    turns = [
        p.one("t1", ["Hello, you're through to customer service. How can I help?", "Hi, what can I do for you?"]),
        p.one("t2", ["I want to change my phone plan because {complaint}.",
                     "Hi. {complaint}, so I'd like a different plan.", "I'd like to look at new plans; {complaint}."]),
        p.one("t3", ["I understand. Would you like to {phone}?", "No problem. Do you want to {phone}?"]),
        p.one("t4", ["Yes, I'd like to {phone_me}.", "I think I'll {phone_me}."]),
        p.one("t5", ["Then I'd suggest {gb} for {price} dollars a month.",
                     "We have a plan with {gb} at {price} a month."]),
        p.one("t6", ["Is there a contract?", "How long is the contract?"]),
        p.one("t7", ["It's {months} months.", "{months} months, and you can upgrade any time."]),
        p.one("t8", ["OK, I'll take it.", "That sounds fair. Let's do that."]),
    ]
    summary = p.one("summary", [
        "#Person2# switches to {a_months}-month phone plan with {gb} for {price} dollars a month.",
        "#Person2# changes phone plans because {complaint2} and chooses {gb} for {price} dollars.",
    ])
    s["a_months"] = ("an " if months.startswith(("8", "11", "18")) else "a ") + months
    s["complaint2"] = (complaint.replace("my ", "#Person2#'s ").replace("I always run", "#Person2# always runs")
                       .replace("I travel", "#Person2# travels"))
    return _fill(turns, summary, s)


def lost_luggage(p: _Picker) -> Scenario:
    first, last = p.name("passenger")
    city = p.one("city", CITIES)
    bag = p.one("bag", ["a black suitcase with wheels", "a green backpack", "a large grey suitcase",
                        "a red sports bag", "a brown leather bag"])
    inside = p.one("inside", ["my work clothes", "medicine I need", "presents for my family", "my laptop charger",
                              "a wedding suit"])
    hotel = p.one("hotel", ["the Harbour Hotel", "the Grand Plaza", "a friend's house", "the Park Inn"])
    hours = p.one("hours", ["24", "48", "12"])
    s = {"first": first, "last": last, "city": city, "bag": bag, "inside": inside, "hotel": hotel, "hours": hours,
         "inside2": inside.replace("my ", "").replace("I need", "#Person2# needs")}
    turns = [
        p.one("t1", ["Baggage services, how can I help?", "Hello. Is something wrong?"]),
        p.one("t2", ["My bag didn't arrive on the flight from {city}.",
                     "I've just come from {city} and my luggage is missing.",
                     "I waited at the belt for an hour, but my bag from {city} never came."]),
        p.one("t3", ["I'm sorry. Can you describe it?", "What does the bag look like?"]),
        p.one("t4", ["It's {bag}.", "{bag}, with a name tag.", "It's {bag}, and it has {inside} in it."]),
        p.one("t5", ["Where are you staying?", "Where can we deliver it when we find it?"]),
        p.one("t6", ["At {hotel}. My name is {first} {last}.", "{hotel}. Please hurry, it has {inside} in it."]),
        p.one("t7", ["Most bags turn up within {hours} hours. We'll bring it to you.",
                     "We'll trace it and deliver it within {hours} hours."]),
    ]
    summary = p.one("summary", [
        "{first} {last}'s bag from {city} is missing, and the airline promises to deliver it to {hotel} "
        "within {hours} hours.",
        "#Person2# reports {bag} lost on the flight from {city}.",
    ])
    return _fill(turns, summary, s,
                 "#Person2#'s bag from {city} is missing, and the airline will deliver it within {hours} hours.")


def pharmacy(p: _Picker) -> Scenario:
    problem, medicine = p.one("problem", [
        ("hay fever", "these antihistamine tablets"), ("hay fever", "this nasal spray"), ("a cold", "this cough syrup"),
        ("a cold", "these throat lozenges"), ("a headache", "these painkillers"), ("heartburn", "this antacid"),
        ("an insect bite", "this cream"), ("dry eyes", "these eye drops"), ("a sprained wrist", "this gel")])
    dose = p.one("dose", ["twice a day", "three times a day", "once in the morning", "every six hours"])
    days = p.one("days", ["three", "five", "seven"])
    price = p.one("price", ["6.50", "8", "9.99", "12.40"])
    s = {"problem": problem, "medicine": medicine, "it": "them" if medicine.startswith("these") else "it",
         "dose": dose, "days": days, "price": price}
    turns = [
        p.one("t1", ["Hello, can I help you?", "Hi, what can I get you?"]),
        p.one("t2", ["I have {problem}. Can you recommend something?", "I need something for {problem}."]),
        p.one("t3", ["Are you taking any other medicine?", "Do you have any allergies?"]),
        p.one("t4", ["No, nothing.", "No, none."]),
        p.one("t5", ["Then try {medicine}. Use {it} {dose}.", "I'd suggest {medicine}, {dose}."]),
        p.one("t6", ["For how long?", "How long should I use it?"]),
        p.one("t7", ["For {days} days. If it's not better, see a doctor.",
                     "Give it {days} days, then see your doctor if needed."]),
        p.one("t8", ["OK. How much is it?", "Thanks. What do I owe you?"]),
        p.one("t9", ["{price} dollars, please.", "That's {price}."]),
    ]
    if p.chance("short", 0.4):  # skip the allergy question (a pair, so speakers still alternate)
        turns = turns[:2] + turns[4:]
    summary = p.one("summary", [
        "The pharmacist recommends {medicine2} for #Person2#'s {problem}, to be used {dose} for {days} days.",
        "#Person2# buys {medicine2} for {problem} for {price} dollars.",
    ])
    s["medicine2"] = medicine.replace("these ", "").replace("this ", "")
    return _fill(turns, summary, s)


def haircut(p: _Picker) -> Scenario:
    first, _ = p.name("client")
    style = p.one("style", ["just a trim", "a short cut", "a fringe", "layers", "a colour and cut"])
    stylist = p.one("stylist", FIRST_NAMES)
    day = p.one("day", WEEKDAYS[:6])
    time = p.one("time", TIMES[:8])
    price = p.one("price", ["20", "35", "45", "60", "85"])
    s = {"first": first, "style": style, "stylist": stylist, "day": day, "time": time, "price": price}
    turns = [
        p.one("t1", ["Studio Nine hair salon, hello.", "Good morning, Cut Above. How can I help?"]),
        p.one("t2", ["Hi, I'd like to book an appointment for {style}.", "Hello, can I book {style}?"]),
        p.one("t3", ["Any stylist in particular?", "Do you have a favourite stylist?"]),
        p.one("t4", ["I'd like {stylist}, if possible.", "{stylist} did it last time. Is {stylist} free?"]),
        p.one("t5", ["{stylist} is free on {day} at {time}.", "{stylist} can do {day}, {time}."]),
        p.one("t6", ["Perfect. How much will it be?", "Great. What's the price?"]),
        p.one("t7", ["{style} is {price} dollars. Your name?", "It's {price}. Can I take your name?"]),
        p.one("t8", ["{first}. Thanks!", "It's {first}. See you {day}."]),
    ]
    summary = p.one("summary", [
        "{first} books {style} with {stylist} on {day} at {time} for {price} dollars.",
        "#Person2# makes a hair appointment with {stylist} on {day} at {time}.",
    ])
    return _fill(turns, summary, s)


def train_ticket(p: _Picker) -> Scenario:
    city = p.one("city", CITIES)
    kind = p.one("kind", ["a single", "a return", "an open return"])
    when = p.one("when", ["today", "tomorrow morning", "on Friday", "this evening"])
    depart = p.one("depart", ["8:05", "9:40", "12:15", "15:20", "17:45", "18:30"])
    platform = p.num("platform", 1, 12)
    price = p.one("price", ["19", "32", "47.50", "64", "88"])
    discount = p.chance("discount", 0.4)
    s = {"city": city, "kind": kind, "when": when, "depart": depart, "platform": platform, "price": price}
    turns = [
        p.one("t1", ["Next, please. Where to?", "Hello, where are you travelling?"]),
        p.one("t2", ["{kind} to {city}, {when}, please.", "I need {kind} ticket to {city} {when}."]),
        p.one("t3", ["The next train is at {depart}. That's {price} dollars.",
                     "There's one at {depart}. It costs {price}."]),
    ]
    if discount:
        turns += [p.one("t4", ["Is there a student discount?", "I have a senior railcard. Does that help?"]),
                  p.one("t5", ["Yes, that takes a third off.", "Yes, you save a third."])]
        s["price_note"] = "with a discount"
    else:
        s["price_note"] = "for " + price + " dollars"
    turns += [p.one("t6", ["Which platform does it leave from?", "Where do I catch it?"]),
              p.one("t7", ["Platform {platform}.", "It leaves from platform {platform}."])]
    if p.chance("bye", 0.5):
        turns += ["Thanks.", p.one("t9", ["Have a good trip.", "You're welcome."])]
    summary = "#Person2# buys {kind} ticket to {city} {price_note} for the {depart} train from platform {platform}."
    return _fill(turns, summary, s)


def weekend_plans(p: _Picker) -> Scenario:
    friend = p.one("friend", FIRST_NAMES)
    activity = p.one("activity", ["go hiking", "see the new film", "try the Thai restaurant", "go to the beach",
                                  "visit the art fair", "play tennis", "go to the concert in the park"])
    day = p.one("day", ["Saturday", "Sunday"])
    time = p.one("time", TIMES)
    meet = p.one("meet", ["the station", "my place", "the café on the corner", "the main gate"])
    excuse = p.one("excuse", ["I have to work in the morning", "my sister is visiting",
                              "I promised to help my dad move"])
    moved = p.chance("moved", 0.4)
    s = {"friend": friend, "activity": activity, "day": day, "time": time, "meet": meet, "excuse": excuse,
         "other": "Sunday" if day == "Saturday" else "Saturday"}
    turns = [
        p.one("t1", ["Hey {friend}, any plans for the weekend?", "{friend}! Are you free this weekend?"]),
        p.one("t2", ["Not really. Why?", "Nothing special yet. What's up?"]),
        p.one("t3", ["Do you want to {activity} on {day}?", "How about we {activity} on {day}?"]),
    ]
    if moved:
        turns += [p.one("t4", ["I'd love to, but {excuse}. What about {other}?",
                               "{day} is hard, {excuse}. Could we do {other}?"]),
                  p.one("t5", ["{other} works too.", "Sure, {other} it is."])]
        s["when"] = s["other"]
    else:
        turns.append(p.one("t4", ["Sounds great!", "Good idea, I'm in."]))
        turns.append(p.one("t5", ["Great.", "Perfect."]))
        s["when"] = day
    turns += [p.one("t6", ["Where shall we meet?", "What time?"]),
              p.one("t7", ["Let's meet at {meet} at {time}.", "{time} at {meet}?"]),
              p.one("t8", ["See you then.", "OK, see you there."])]
    summary = p.one("summary", [
        "#Person1# and {friend} will {activity} on {when} and meet at {meet3} at {time}.",
        "#Person1# invites {friend} to {activity}, and they agree to go on {when}.",
    ])
    s["meet3"] = meet.replace("my place", "#Person1#'s place")  # the summary is in the third person
    return _fill(turns, summary, s)


def gift_shopping(p: _Picker) -> Scenario:
    person, occasion = p.one("person", [
        ("my mother", "birthday"), ("my brother", "graduation"), ("my girlfriend", "anniversary"),
        ("a colleague who's retiring", "retirement"), ("my grandfather", "birthday"), ("my best friend", "birthday"),
        ("my sister", "graduation"), ("my husband", "anniversary"), ("my neighbour", "housewarming")])
    budget = p.one("budget", ["30", "50", "80", "100", "150"])
    hobby = p.one("hobby", ["gardening", "cooking", "reading", "music", "travel", "photography"])
    gift = {"gardening": "a set of garden tools", "cooking": "a good chef's knife", "reading": "an e-reader cover "
            "and a book voucher", "music": "wireless speakers", "travel": "a leather passport holder",
            "photography": "a small tripod"}[hobby]
    wrap = p.chance("wrap", 0.6)
    s = {"person": person, "occasion": occasion, "an": "an" if occasion[0] in "aeiou" else "a",
         "budget": budget, "hobby": hobby, "gift": gift,
         "person3": person.replace("my ", "#Person1#'s ").replace("a colleague who's", "a colleague who is")}
    turns = [
        p.one("t1", ["I'm looking for {an} {occasion} present for {person}.", "Hi, I need a gift for {person}."]),
        p.one("t2", ["What kind of things do they enjoy?", "Any hobbies I should know about?"]),
        p.one("t3", ["Mostly {hobby}.", "{hobby}, definitely.", "They love {hobby}."]),
        p.one("t4", ["What's your budget?", "How much would you like to spend?"]),
        p.one("t5", ["Around {budget} dollars.", "No more than {budget}."]),
        p.one("t6", ["Then I'd suggest {gift}.", "How about {gift}? It's very popular."]),
        p.one("t7", ["Perfect, I'll take it.", "That's a lovely idea."]),
    ]
    if wrap:
        turns += [p.one("t8", ["Would you like it gift-wrapped?", "Shall I wrap it for you?"]),
                  p.one("t9", ["Yes, please.", "Oh yes, thank you."])]
    summary = "#Person1# buys {gift} as {an} {occasion} present for {person3}, who likes {hobby}."
    return _fill(turns, summary, s)


FAMILIES: dict[str, Callable[[_Picker], Scenario]] = {
    "hotel check-in": hotel_check_in,
    "restaurant booking": restaurant_booking,
    "doctor appointment": doctor_appointment,
    "job interview": job_interview,
    "returning a purchase": returning_purchase,
    "asking directions": asking_directions,
    "renting a flat": renting_flat,
    "bank account": bank_account,
    "airport check-in": airport_check_in,
    "car repair": car_repair,
    "ordering food": ordering_food,
    "library": library,
    "gym membership": gym_membership,
    "phone plan": phone_plan,
    "lost luggage": lost_luggage,
    "pharmacy": pharmacy,
    "haircut": haircut,
    "train ticket": train_ticket,
    "weekend plans": weekend_plans,
    "gift shopping": gift_shopping,
}

# The demo's showcase: every choice of the hotel family fixed (template indices map to the lists above).
_SHOWCASE_SLOTS: dict[str, object] = {
    "guest.first": "John", "guest.last": "Sandals", "nights": 3, "room": "507", "refused": "American Express",
    "accepted": "MasterCard or VISA", "card": "VISA", "kind": "single room", "thanks": True,
    "t1": "Good evening, welcome to our hotel. How can I help you?",
    "t2": "Hi, I have a reservation under the name {first} {last}.",
    "t3": "Let me check. Yes, {title} {last}, a {kind} for {nights} night{plural}. How would you like to pay?",
    "t4": "Can I pay with {refused}?",
    "t5": "I'm sorry, we only accept {accepted}.",
    "t6": "No problem. Here's my {card} card.",
    "t7": "Thank you. You're in room {room} on the {floor} floor. Here is your key.",
    "t8": "Thanks very much.",
    "summary": "{first} {last} checks in at the hotel, pays by {card} because only {accepted} is accepted, "
               "and gets room {room}.",
}


def _showcase() -> dict:
    turns, summary = hotel_check_in(_Picker(random.Random(0), _SHOWCASE_SLOTS))
    return {"dialogue": _join(turns), "summary": summary, "topic": "hotel check-in"}


SHOWCASE: dict = _showcase()


def generate(n: int, seed: int = 0) -> list[dict]:
    """``n`` dialogues, the families in turn (so every family appears once n >= their count), deterministic."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(seed)
    topics = list(FAMILIES)
    rows: list[dict] = []
    while len(rows) < n:
        topic = topics[len(rows) % len(topics)]
        turns, summary = FAMILIES[topic](_Picker(rng))
        dialogue = _join(turns)
        if dialogue == SHOWCASE["dialogue"]:  # cannot happen (the name pool lacks Sandals); kept as a guarantee
            continue
        rows.append({"dialogue": dialogue, "summary": summary, "topic": topic})
    return rows


def write_jsonl(path: str | Path, rows: Sequence[dict], prompt_template: str = PROMPT_TEMPLATE) -> Path:
    """Bedrock's fine-tuning format: one {"prompt", "completion"} object per line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            line = {"prompt": prompt_template.format(dialogue=row["dialogue"]), "completion": row["summary"]}
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
    return path


def describe(rows: Sequence[dict]) -> dict:
    """Figures for the report: distinct texts and mean lengths (tokens approximated as words * 1.3)."""
    def tokens(text: str) -> float:
        return len(text.split()) * 1.3
    return {
        "rows": len(rows),
        "distinct_dialogues": len({r["dialogue"] for r in rows}),
        "distinct_summaries": len({r["summary"] for r in rows}),
        "topics": len({r["topic"] for r in rows}),
        "mean_dialogue_tokens": round(sum(tokens(r["dialogue"]) for r in rows) / max(len(rows), 1), 1),
        "mean_summary_tokens": round(sum(tokens(r["summary"]) for r in rows) / max(len(rows), 1), 1),
    }


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    generated = generate(count)
    if len(sys.argv) > 2:
        print(write_jsonl(sys.argv[2], generated))
    print(json.dumps(describe(generated), indent=2))
